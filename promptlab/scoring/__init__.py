"""Scorers, and scoring a run's stored outputs."""

from promptlab.scoring.apply import ScorerSet, build_scorers, score_run
from promptlab.scoring.scorers import Score, Scorer, build_scorer, parse_judgement

__all__ = ["Score", "Scorer", "ScorerSet", "build_scorer", "build_scorers", "parse_judgement",
           "score_run"]
