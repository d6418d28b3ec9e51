"""Window rendering for the VLM locator and series plots for reports."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from anomamind.tools.plotting import SHADE_COLOURS, plot_series_with_intervals, render_window
from anomamind.types import Interval


@pytest.fixture(scope="module")
def values() -> np.ndarray:
    return np.sin(np.arange(500) / 4.0) + 0.05 * np.random.default_rng(0).standard_normal(500)


def image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def test_default_and_high_res_sizes(values: np.ndarray) -> None:
    assert image(render_window(values, 100, 200)).size == (768, 256)
    assert image(render_window(values, 100, 200, high_res=True)).size == (3570, 1170)


def test_identical_input_gives_identical_bytes(values: np.ndarray) -> None:
    first = render_window(values, 100, 200, context=20, shade=[(150, 155, "candidate")])
    second = render_window(values.copy(), 100, 200, context=20, shade=[(150, 155, "candidate")])
    assert first == second
    assert b"anomamind" in first and b"Matplotlib" not in first
    assert render_window(values, 100, 200, shade=[(150, 160, "detected")]) != render_window(values, 100, 200)


def test_shading_uses_the_colour_of_its_kind(values: np.ndarray) -> None:
    plain = np.asarray(image(render_window(values, 100, 200)), dtype=int)
    shaded = np.asarray(image(render_window(values, 100, 200, shade=[(120, 140, "detected"), Interval(170, 180)])), dtype=int)
    changed = np.abs(shaded - plain).sum(axis=2) > 30
    columns = np.flatnonzero(changed.any(axis=0))
    # two shaded bands, each inside the plot's horizontal extent
    assert columns.size > 0 and np.diff(columns).max() > 20
    # the band's colour is the "detected" red blended on white, not the "candidate" orange
    band = shaded[128, columns[0] + 2].astype(float)

    def blended(kind: str) -> np.ndarray:
        rgb = np.array([int(SHADE_COLOURS[kind][i : i + 2], 16) for i in (1, 3, 5)], dtype=float)
        return 0.3 * rgb + 0.7 * 255

    assert np.abs(band - blended("detected")).max() < 12
    assert np.abs(band - blended("candidate")).max() > 12


def test_normalisation_makes_plots_scale_free(values: np.ndarray) -> None:
    assert render_window(values, 100, 200) == render_window(values * 1000 + 7, 100, 200)
    assert render_window(values, 100, 200, normalise=False) != render_window(values * 1000, 100, 200, normalise=False)


def test_constant_window_and_bad_arguments() -> None:
    flat = np.ones(50)
    assert image(render_window(flat, 0, 50)).size == (768, 256)
    with pytest.raises(ValueError, match="not inside a series of 50 points"):
        render_window(flat, 40, 60)
    with pytest.raises(ValueError, match="context must be"):
        render_window(flat, 0, 10, context=-1)


def test_report_plot(values: np.ndarray) -> None:
    labels = np.zeros(500, dtype=int)
    labels[200:210] = 1
    png = plot_series_with_intervals(values, labels=labels, detections=[(205, 215)], title="demo")
    assert image(png).size == (1200, 300)
    with pytest.raises(ValueError, match="labels have 3 points"):
        plot_series_with_intervals(values, labels=np.zeros(3))
