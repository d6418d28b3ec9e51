"""The LLM proposer for log rules: CodeAD's generate -> test -> repair -> refine, through any chat backend.

It shares :class:`~anomamind.rules.proposer_llm.LLMProposer`'s machinery (one chat request
per proposal, the rule is the answer's python block, repair from the sandbox's error,
refine from fed-back windows, mutate) and changes what the model is shown: the log rules'
interface (``agents/prompts/rule_log_system.md``) and the contrastive sample of CodeAD
(``rule_log_propose.md``: anomalous anchor windows, each with its nearest normal windows;
see :mod:`anomamind.rules.log_sampler`). Refinement (``rule_log_refine.md``) receives the
windows a rule got wrong: contrastive samples for a new rule, validation windows for a rule
that scores below its parent. Repairs use the shared ``rule_repair.md``.
"""

from __future__ import annotations

from anomamind.agents.backends.base import ChatBackend
from anomamind.envs.log_windows import LogWindowSpec
from anomamind.rules.log_data import LogPart
from anomamind.rules.log_sampler import ContrastiveSample, describe_window
from anomamind.rules.loop import LLMOptions
from anomamind.rules.proposer_llm import LLMProposer, load_prompt

LOG_MUTATIONS = (
    "remove the condition that matters least",
    "make the most important pattern more general or more specific (your judgement)",
    "rewrite the rule freely with a different idea of what makes these windows anomalous",
)
LOG_OBJECTIVES = {
    None: "The rule is scored by window-level F1 against the true labels on later windows of the log.",
    "and": ("The rule's verdicts are AND-ed with an existing detector's: a window counts as anomalous only if "
            "both flag it. Write a rule that confirms true anomalies and rejects the detector's false alarms."),
    "or": ("The rule's verdicts are OR-ed with an existing detector's. Write a rule that finds anomalous "
           "windows such a detector misses, with few false alarms."),
}


class LogLLMProposer(LLMProposer):
    """Log rules from a chat model, prompted with CodeAD's contrastive windows."""

    prompts = {"system": "rule_log_system", "propose": "rule_log_propose", "repair": "rule_repair",
               "refine": "rule_log_refine", "mutate": "rule_log_mutate"}
    mutations = LOG_MUTATIONS

    def __init__(
        self,
        backend: ChatBackend,
        train: LogPart,
        sample: ContrastiveSample,
        window: LogWindowSpec,
        options: LLMOptions | None = None,
        *,
        combine_mode: str | None = None,
        name_prefix: str = "rule",
        dataset: str = "",
        max_lines_shown: int = 14,
    ):
        self.sample = sample
        self.window = window
        self.max_lines_shown = max_lines_shown
        super().__init__(backend, train, options, combine_mode=combine_mode, name_prefix=name_prefix,
                         dataset=dataset)

    def system_prompt(self) -> str:
        return load_prompt(self.prompts["system"]).substitute(window=self.window.describe())

    def examples(self, seed: int) -> str:
        """``example_windows`` anchor/neighbour pairs, a different rotation for each seed."""
        pairs = self.sample.pairs
        if not pairs:
            return "(no anomalous training windows)"
        count = min(self.options.example_windows, len(pairs))
        blocks = []
        for k in range(count):
            anchor, neighbours = pairs[(seed + k) % len(pairs)]
            block = [f"Example {k + 1}, ANOMALOUS window ({len(self.train.windows[anchor])} lines):",
                     describe_window(self.train, anchor, self.max_lines_shown)]
            for near in neighbours:
                block += [f"Example {k + 1}, its nearest NORMAL window ({len(self.train.windows[near])} lines):",
                          describe_window(self.train, near, self.max_lines_shown)]
            blocks.append("\n".join(block))
        return "\n\n".join(blocks)

    def propose_prompts(self, index: int, seed: int) -> list[str]:
        """The proposal prompt (one size: the sampler already bounds the lines shown)."""
        return [load_prompt(self.prompts["propose"]).substitute(
            dataset=self.dataset,
            examples=self.examples(seed * 1000 + index),
            anomalous=int(self.train.labels.sum()),
            windows=len(self.train.windows),
            objective=LOG_OBJECTIVES[self.combine_mode],
        )]
