"""Benchmark suites of the three papers, one file each, all behind the :class:`Benchmark` contract."""

from valley3.eval.benchmarks.base import Benchmark, EvalItem, SampleScore, answer_letter, options_block
from valley3.eval.benchmarks.chinese_ecomqa import ChineseEcomQA, normalize_cjk
from valley3.eval.benchmarks.demo_reasoning import DemoReasoning
from valley3.eval.benchmarks.ebay import EBay
from valley3.eval.benchmarks.ecinstruct import ECInstruct
from valley3.eval.benchmarks.ecom_caption import EcomCaption
from valley3.eval.benchmarks.ecom_vqa import EcomVQA
from valley3.eval.benchmarks.ecommmmu import EComMMMU
from valley3.eval.benchmarks.judge import HTTPJudge, Judge, JudgeShares, LocalModelJudge, PromptJudge, RuleJudge
from valley3.eval.benchmarks.mmecinstruct import MMECInstruct
from valley3.eval.benchmarks.omni_ecom import OmniEcom
from valley3.eval.benchmarks.scored import Scored

__all__ = [
    "Benchmark",
    "ChineseEcomQA",
    "DemoReasoning",
    "EBay",
    "ECInstruct",
    "EComMMMU",
    "EcomCaption",
    "EcomVQA",
    "EvalItem",
    "HTTPJudge",
    "Judge",
    "JudgeShares",
    "LocalModelJudge",
    "MMECInstruct",
    "OmniEcom",
    "PromptJudge",
    "RuleJudge",
    "SampleScore",
    "Scored",
    "answer_letter",
    "normalize_cjk",
    "options_block",
]
