"""The load generator: plans, the run, and its result (docs/loadgen.md)."""

from inferlab.loadgen.launch import run
from inferlab.loadgen.payloads import model_target
from inferlab.loadgen.plan import LoadPlan, RateShape, Target, ThinkTime, Timestamps
from inferlab.loadgen.result import RequestRecord, RunResult

__all__ = ["LoadPlan", "RateShape", "RequestRecord", "RunResult", "Target", "ThinkTime", "Timestamps",
           "model_target", "run"]
