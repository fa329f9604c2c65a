"""How soon a running execution is likely to end, learned from the ones that did end.

Pure: durations and ages are seconds passed in; `Lifetimes` is a frozen value and
`ended` returns the next one.

The estimate is a hazard rate: the chance per second that an execution of age `a`
ends within the next `horizon_s`, given it has run for `a` already. For a responder
with enough history it is the empirical one (of its recent durations, the share of
those that outlived `a` which ended within the horizon), shrunk towards the pooled
estimate of all responders, which is itself shrunk towards a long-tailed prior. The
prior is the hazard of a Pareto law of index 1, `1 / (a + prior_scale_s)`: young
executions end soon, and one that has run for an hour is expected to run on for
about as long again. A responder never seen is read with the pooled estimate.

Invariants: every estimate is positive and finite; at most `keep` durations are kept
per responder (the most recent), so memory is bounded by the number of responders.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

POOLED = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Lifetimes:
    """Recent durations of ended executions, per responder and pooled."""

    keep: int = 256
    prior_scale_s: float = 30.0
    # How many observations the prior (or the pooled estimate) is worth.
    prior_weight: float = 4.0
    # Per responder (and POOLED), durations in arrival order, and the same sorted.
    recent: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: MappingProxyType({}))
    ordered: Mapping[str, tuple[float, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def ended(self, responder_id: str, duration_s: float) -> Lifetimes:
        """Learn that an execution of `responder_id` ended after `duration_s`."""
        duration_s = max(0.0, duration_s)
        recent = dict(self.recent)
        ordered = dict(self.ordered)
        for key in {responder_id, POOLED}:
            kept = (*recent.get(key, ()), duration_s)[-self.keep :]
            recent[key] = kept
            ordered[key] = tuple(sorted(kept))
        return replace(self, recent=MappingProxyType(recent), ordered=MappingProxyType(ordered))

    def samples(self, responder_id: str) -> int:
        return len(self.recent.get(responder_id, ()))

    def end_rate_per_s(self, responder_id: str, *, age_s: float, horizon_s: float) -> float:
        """The chance per second that an execution of this age ends within `horizon_s`."""
        age_s = max(0.0, age_s)
        horizon_s = max(1e-3, horizon_s)
        prior = 1.0 / (age_s + self.prior_scale_s)
        pooled = self._shrunk(POOLED, age_s=age_s, horizon_s=horizon_s, towards=prior)
        if responder_id == POOLED:
            return pooled
        return self._shrunk(responder_id, age_s=age_s, horizon_s=horizon_s, towards=pooled)

    def _shrunk(self, key: str, *, age_s: float, horizon_s: float, towards: float) -> float:
        durations = self.ordered.get(key, ())
        # Durations longer than the age are "at risk"; those also within the horizon ended.
        at_risk_from = bisect.bisect_right(durations, age_s)
        ended_by = bisect.bisect_right(durations, age_s + horizon_s)
        at_risk = len(durations) - at_risk_from
        ended = ended_by - at_risk_from
        weight = self.prior_weight
        return (ended + weight * towards * horizon_s) / ((at_risk + weight) * horizon_s)
