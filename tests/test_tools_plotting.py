"""Window rendering for the VLM locator and series plots for reports."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from anomamind.tools.plotting import (
    CONFIDENCE_COLOURS,
    DETECTION_DPI,
    DETECTION_WIDTH,
    LABEL_COLOUR,
    SHADE_COLOURS,
    detection_clusters,
    detection_layout,
    envelope,
    render_detection,
    render_window,
)
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


def _pixel_column(rect: tuple[float, float, float, float], index: int, n: int, width_px: int) -> int:
    """Image column of series index ``index`` in an axes spanning [-0.5, n - 0.5]."""
    left, _, width, _ = rect
    return int(round((left + width * (index + 0.5) / n) * width_px))


def _pixel_rows(rect: tuple[float, float, float, float], y0: float, y1: float, height_px: int) -> slice:
    """Image rows of axes-fraction heights y0..y1 (image row 0 is the top)."""
    _, bottom, _, height = rect
    top = int(round((1 - (bottom + height * y1)) * height_px))
    return slice(top + 1, int(round((1 - (bottom + height * y0)) * height_px)) - 1)


def test_every_one_point_detection_is_drawn_on_a_long_series() -> None:
    n = 60_000  # about 50 points per pixel column: a plain axvspan would be invisible
    rng = np.random.default_rng(1)
    series = np.sin(np.arange(n) / 300.0) + 0.1 * rng.standard_normal(n)
    points = {(700, 3), (15_003, 1), (15_090, 2), (31_000, 3), (47_777, 1), (59_990, 2)}
    detections = [Interval(i, i, confidence=c) for i, c in sorted(points)]
    labels = np.zeros(n, dtype=int)
    labels[700] = 1
    png = image(render_detection(series, detections, labels=labels, title="one-point detections"))
    layout = detection_layout(len(detection_clusters([(i, i, c) for i, c in points])))
    width_px, height_px = png.size
    assert (width_px, height_px) == tuple(round(v * DETECTION_DPI) for v in layout.size)
    pixels = np.asarray(png, dtype=int)
    detected_row = _pixel_rows(layout.strip, 0.55, 0.95, height_px)  # the strip's "detected" row
    for index, confidence in points:
        colour = np.array(Image.new("RGB", (1, 1), CONFIDENCE_COLOURS[confidence]).getpixel((0, 0)))
        column = _pixel_column(layout.strip, index, n, width_px)
        patch = pixels[detected_row, column - 2 : column + 3]
        # a neighbour 1.8 px away may overdraw part of the bar, never all of it
        assert ((np.abs(patch - colour).sum(axis=2) < 10).mean(axis=0) > 0.9).any(), (index, confidence)
    quiet = _pixel_column(layout.strip, 40_000, n, width_px)  # nothing detected near here
    background = pixels[detected_row, quiet - 2 : quiet + 3]
    assert all((np.abs(background - c).sum(axis=2) > 60).all() for c in
               [np.array(Image.new("RGB", (1, 1), CONFIDENCE_COLOURS[k]).getpixel((0, 0))) for k in (1, 2, 3)])
    labelled_row = _pixel_rows(layout.strip, 0.05, 0.45, height_px)
    teal = np.array(Image.new("RGB", (1, 1), LABEL_COLOUR).getpixel((0, 0)))
    column = _pixel_column(layout.strip, 700, n, width_px)
    assert (np.abs(pixels[labelled_row, column - 1 : column + 2] - teal).sum(axis=2) < 10).mean() > 0.5


def test_detection_plot_zooms_on_clusters_and_labels_times() -> None:
    n = 5_000
    values = np.cos(np.arange(n) / 20.0)
    spans = [(100, 100, 1), (120, 125, 3), (2_000, 2_000, 2), (4_990, 4_999, 2)]
    assert detection_clusters(spans) == [(100, 125, 3), (2_000, 2_000, 2), (4_990, 4_999, 2)]
    stamps = np.datetime64("2024-05-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
    png = image(render_detection(values, spans, timestamps=stamps))
    assert png.size[1] == round(detection_layout(3).size[1] * DETECTION_DPI)
    short = image(render_detection(values[:500], [(10, 10, 3)]))
    assert short.size[1] == round(detection_layout(0).size[1] * DETECTION_DPI)  # no zoom needed
    with pytest.raises(ValueError, match="timestamps have 3 points"):
        render_detection(values, spans, timestamps=stamps[:3])


def test_detection_plot_survives_values_near_the_float_limit() -> None:
    values = np.zeros(300)
    values[[10, 200]] = [1.7e308, -1.7e308]
    png = image(render_detection(values, [(10, 10, 3), (200, 200, 3)]))
    assert png.size[0] == round(DETECTION_WIDTH * DETECTION_DPI)


def test_long_series_are_drawn_as_their_per_pixel_envelope() -> None:
    values = np.random.default_rng(2).standard_normal(1_000_003)
    values[777_777] = 50.0  # one extreme point must survive the downsampling
    x, y = envelope(values, 0, values.size, 1000.0)
    assert x.size == y.size <= 2000
    assert y.max() == 50.0 and y.min() == values.min()
    x_short, y_short = envelope(values[:1500], 0, 1500, 1000.0)
    np.testing.assert_array_equal(y_short, values[:1500])  # short: every point itself
