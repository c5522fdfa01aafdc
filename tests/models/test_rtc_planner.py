"""RequestPlanner and ActionSource: unit tests and property tests of the RTC invariants."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtrun.models.rtc import (
    ActionSource,
    DroppedReply,
    MergeCommand,
    PlannerConfig,
    QueueSnapshot,
    RequestPlanner,
    RTCError,
)

DT = 1 / 30


def snap(
    queued: int = 0,
    *,
    episode: int = 0,
    idx: int = 0,
    prefix: np.ndarray | None = None,
    last_merge_seq: int = -1,
) -> QueueSnapshot:
    return QueueSnapshot(
        episode=episode,
        idx_before=idx,
        queued_steps=queued,
        prefix_model=prefix,
        prefix_robot=None if prefix is None else 2 * prefix,
        last_merge_seq=last_merge_seq,
    )


def chunk(rows: int = 10, width: int = 2, base: float = 0.0) -> np.ndarray:
    return (base + np.arange(rows * width, dtype=np.float32)).reshape(rows, width)


def reply(planner: RequestPlanner, now: float, seq: int, **kw: Any) -> MergeCommand | DroppedReply:
    c = kw.pop("chunk", chunk())
    fields = {"episode": planner.episode, "epoch": planner.epoch, **kw}
    return planner.on_reply(now, seq=seq, chunk_model=c, chunk_robot=2 * c, **fields)


# --------------------------------------------------------------------------------- planner


def test_self_clocking_threshold() -> None:
    p = RequestPlanner(PlannerConfig(fps=30, buffer_time_s=0.5))
    assert not p.wants_request(0.0, snap(16))
    assert p.wants_request(0.0, snap(15))


def test_one_request_in_flight() -> None:
    p = RequestPlanner()
    req = p.poll(0.0, snap())
    assert req is not None
    assert req.seq == 1
    assert p.poll(0.1, snap()) is None
    with pytest.raises(RTCError, match="one request in flight"):
        p.start_request(0.1, snap())
    cmd = reply(p, 0.3, req.seq)
    assert isinstance(cmd, MergeCommand)
    assert p.in_flight is None


def test_accepted_reply_builds_merge() -> None:
    p = RequestPlanner(PlannerConfig(fps=30))
    req = p.start_request(1.0, snap(idx=4))
    cmd = reply(p, 1.0 + 0.3, req.seq)
    assert isinstance(cmd, MergeCommand)
    assert cmd.real_delay == 9
    assert cmd.idx_before == 4
    assert cmd.latency_s == pytest.approx(0.3)
    assert cmd.seq == req.seq
    assert p.tracker.max() == pytest.approx(0.3)
    nxt = p.start_request(2.0, snap(last_merge_seq=req.seq))
    assert nxt.inference_delay == 9  # sent delay = ceil(max/dt)


def test_first_request_has_zero_delay_and_episode_start() -> None:
    p = RequestPlanner()
    req = p.start_request(0.0, snap())
    assert (req.inference_delay, req.episode_start, req.prefix_model) == (0, True, None)
    reply(p, 0.2, req.seq)
    req2 = p.start_request(0.5, snap(last_merge_seq=req.seq))
    assert not req2.episode_start


def test_episode_start_until_first_accepted_reply() -> None:
    p = RequestPlanner(PlannerConfig(request_timeout_s=1.0))
    req = p.start_request(0.0, snap())
    assert p.expire(1.0)
    req2 = p.start_request(1.0, snap())
    assert req2.episode_start  # the first request timed out: still the episode's start
    assert req2.seq == req.seq + 1


def test_prefix_truncated_and_rtc_off() -> None:
    prefix = chunk(12)
    p = RequestPlanner(PlannerConfig(prefix_rows=4))
    req = p.start_request(0.0, snap(prefix=prefix))
    assert req.prefix_model is not None
    assert req.prefix_robot is not None
    np.testing.assert_array_equal(req.prefix_model, prefix[:4])
    np.testing.assert_array_equal(req.prefix_robot, 2 * prefix[:4])
    off = RequestPlanner(PlannerConfig(rtc_enabled=False))
    off.tracker.add(0.5)
    req = off.start_request(0.0, snap(prefix=prefix))
    assert (req.prefix_model, req.prefix_robot, req.inference_delay) == (None, None, 0)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"epoch": 7}, "old_epoch"),
        ({"episode": 5}, "old_episode"),
        ({"seq_offset": -1}, "not_latest"),
    ],
)
def test_reply_filters(kw: dict[str, int], reason: str) -> None:
    p = RequestPlanner()
    first = p.start_request(0.0, snap())
    p.expire(10.0)
    second = p.start_request(10.0, snap())
    assert second.seq == first.seq + 1
    seq = second.seq + kw.pop("seq_offset", 0)
    out = reply(p, 10.1, seq, **kw)
    assert out == DroppedReply(reason=reason, seq=seq)
    assert p.statistics().dropped == {reason: 1}
    assert p.in_flight is second


def test_reply_without_request_and_duplicate() -> None:
    p = RequestPlanner()
    assert reply(p, 0.0, 1) == DroppedReply(reason="no_request", seq=1)
    req = p.start_request(0.0, snap())
    assert isinstance(reply(p, 0.1, req.seq), MergeCommand)
    assert reply(p, 0.2, req.seq) == DroppedReply(reason="no_request", seq=req.seq)


def test_timeout_then_late_reply() -> None:
    p = RequestPlanner(PlannerConfig(request_timeout_s=2.0))
    req = p.start_request(0.0, snap())
    assert not p.expire(1.99)
    assert p.wants_request(2.0, snap())
    assert p.statistics().timeouts == 1
    assert reply(p, 2.5, req.seq).reason == "no_request"  # type: ignore[union-attr]


def test_merge_acknowledgement_gate() -> None:
    p = RequestPlanner(PlannerConfig(request_timeout_s=3.0))
    req = p.start_request(0.0, snap())
    reply(p, 0.3, req.seq)
    assert not p.wants_request(0.4, snap(last_merge_seq=-1))  # status predates the merge
    assert p.wants_request(0.4, snap(last_merge_seq=req.seq))
    assert p.wants_request(3.3, snap(last_merge_seq=-1))  # merge command lost: unblock


def test_reset_and_epoch_abandon_the_request() -> None:
    p = RequestPlanner()
    req = p.start_request(0.0, snap())
    assert p.reset() == 1
    assert p.in_flight is None
    assert not p.wants_request(0.1, snap(episode=0))  # queue not reset yet
    assert reply(p, 0.2, req.seq, episode=0).reason == "old_episode"  # type: ignore[union-attr]
    req = p.start_request(0.3, snap(episode=1))
    assert req.episode_start
    assert p.new_epoch() == 1
    assert reply(p, 0.4, req.seq, epoch=0).reason == "old_epoch"  # type: ignore[union-attr]
    with pytest.raises(RTCError, match="increase"):
        p.reset(1)
    assert p.tracker is not None


def test_pause_resume() -> None:
    p = RequestPlanner()
    p.pause()
    assert not p.wants_request(0.0, snap())
    p.resume()
    assert p.wants_request(0.0, snap())


@pytest.mark.parametrize(
    "kw", [{"fps": 0}, {"buffer_time_s": -1}, {"prefix_rows": -1}, {"request_timeout_s": 0}]
)
def test_planner_config_validation(kw: dict[str, float]) -> None:
    with pytest.raises(RTCError, match="must be"):
        PlannerConfig(**kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- ActionSource


def merge_cmd(c: np.ndarray, *, episode: int = 0, seq: int = 1, delay: int = 0, **kw: Any) -> MergeCommand:
    return MergeCommand(
        episode=episode,
        seq=seq,
        chunk_model=c,
        chunk_robot=10 * c,
        real_delay=delay,
        idx_before=kw.pop("idx_before", None),
        latency_s=kw.pop("latency_s", 0.0),
        **kw,
    )


def test_source_plays_queue_then_holds() -> None:
    s = ActionSource(n_actions=2)
    assert s.tick(0.0).source == "none"
    assert s.merge(merge_cmd(chunk(3)), 0.0) is None
    outs = [s.tick(i * DT) for i in range(1, 5)]
    assert [o.source for o in outs] == ["queue", "queue", "queue", "none"]
    np.testing.assert_array_equal(outs[0].action, [0, 10])
    assert outs[0].action is not None
    assert not outs[0].action.flags.writeable
    st_ = s.statistics()
    assert (st_.empty_ticks, st_.starved_ticks, st_.queue_ticks) == (2, 1, 3)


@pytest.mark.parametrize(
    ("fallback", "expected"),
    [("hold", None), ("repeat_last", [40, 50]), ("zero", [0, 0])],
)
def test_fallbacks(fallback: str, expected: list[float] | None) -> None:
    s = ActionSource(n_actions=2, fallback=fallback)
    s.merge(merge_cmd(chunk(3)), 0.0)
    for i in range(3):
        s.tick(i * DT)
    out = s.tick(1.0)
    if expected is None:
        assert (out.action, out.source) == (None, "none")
    else:
        np.testing.assert_array_equal(out.action, expected)
        assert out.source == "fallback"
    assert s.statistics().fallback_ticks == (expected is not None)


def test_repeat_last_without_history_holds() -> None:
    s = ActionSource(n_actions=2, fallback="repeat_last")
    assert s.tick(0.0).action is None


def test_staleness_clears_queue() -> None:
    s = ActionSource(n_actions=2, max_action_age_s=1.0)
    s.merge(merge_cmd(chunk(50), latency_s=0.4), 10.0)  # anchor = 9.6
    assert s.tick(10.5).source == "queue"
    out = s.tick(10.61)
    assert out.stale_drop
    assert out.action is None
    assert s.statistics().stale_drops == 1
    assert s.queued_steps == 0
    s.merge(merge_cmd(chunk(5), seq=2), 11.0)
    assert s.tick(11.0).source == "queue"


def test_staleness_disabled() -> None:
    s = ActionSource(n_actions=2, max_action_age_s=None)
    s.merge(merge_cmd(chunk(5)), 0.0)
    assert s.tick(1000.0).source == "queue"


def test_interpolation_multiplier() -> None:
    s = ActionSource(n_actions=2, interpolation_multiplier=2)
    s.merge(merge_cmd(chunk(3)), 0.0)
    vals = [s.tick(i * DT / 2).action for i in range(6)]
    got = [None if v is None else v[0] for v in vals]
    assert got == [0.0, 10.0, 20.0, 30.0, 40.0, None]  # 1 + (3-1)·2 commands
    assert s.queued_steps == 0


def test_merge_drops_are_counted() -> None:
    s = ActionSource(n_actions=2)
    assert s.merge(merge_cmd(chunk(3), episode=3), 0.0) == "old_episode"
    assert s.merge(merge_cmd(chunk(3, width=3)), 0.0) == "action_dim"
    bad = chunk(3)
    bad[1, 1] = np.nan
    assert s.merge(merge_cmd(bad), 0.0) == "non_finite"
    assert s.statistics().merges_dropped == {"old_episode": 1, "action_dim": 1, "non_finite": 1}
    assert s.snapshot().last_merge_seq == 1


def test_reset_forgets_everything() -> None:
    s = ActionSource(n_actions=2, fallback="repeat_last", interpolation_multiplier=2)
    s.merge(merge_cmd(chunk(4)), 0.0)
    s.tick(0.0)
    assert s.reset() == 1
    out = s.tick(0.1)
    assert (out.action, out.episode) == (None, 1)
    assert s.queued_steps == 0
    assert s.merge(merge_cmd(chunk(4), episode=0, seq=2), 0.2) == "old_episode"
    with pytest.raises(RTCError, match="increase"):
        s.reset(1)
    assert s.reset(5) == 5


def test_snapshot_is_atomic_view() -> None:
    s = ActionSource(n_actions=2)
    s.merge(merge_cmd(chunk(6), delay=1), 0.0)
    s.tick(0.0)
    sn = s.snapshot(max_rows=3)
    assert (sn.idx_before, sn.queued_steps, sn.episode) == (1, 4, 0)
    np.testing.assert_array_equal(sn.prefix_model, chunk(6)[2:5])
    np.testing.assert_array_equal(sn.prefix_robot, 10 * chunk(6)[2:5])
    for _ in range(4):
        s.tick(0.0)
    empty = s.snapshot(max_rows=3)
    assert (empty.prefix_model, empty.prefix_robot) == (None, None)  # empty left-over = no prefix


def test_clamp_to_consumed_fixes_first_chunk_over_trim() -> None:
    plain = ActionSource(n_actions=2)
    plain.merge(merge_cmd(chunk(10), delay=4, idx_before=0), 0.0)
    assert plain.queued_steps == 6
    fixed = ActionSource(n_actions=2)
    fixed.merge(merge_cmd(chunk(10), delay=4, idx_before=0, clamp_to_consumed=True), 0.0)
    assert fixed.queued_steps == 10


@pytest.mark.parametrize("kw", [{"fallback": "brake"}, {"n_actions": 0}, {"max_action_age_s": 0.0}])
def test_source_validation(kw: dict[str, Any]) -> None:
    args: dict[str, Any] = {"n_actions": 2, **kw}
    with pytest.raises(RTCError, match="must be"):
        ActionSource(**args)


# ------------------------------------------------------------------------ property tests


@dataclass
class Harness:
    """Planner + source + a fake policy/network whose replies can be late, lost or duplicated.

    Robot-space chunks carry tags: column 0 = unique chunk id, 1 = row, 2 = episode. Accepted
    merges travel to the source separately (``apply``), so a reset can overtake them.
    """

    planner: RequestPlanner
    source: ActionSource
    now: float = 0.0
    issued: list[Any] = field(default_factory=list)
    network: list[tuple[Any, np.ndarray]] = field(default_factory=list)
    accepted: set[int] = field(default_factory=set)
    emitted: set[tuple[int, int]] = field(default_factory=set)
    merges: list[MergeCommand] = field(default_factory=list)
    next_uid: int = 1

    def poll(self) -> None:
        prev = self.issued[-1] if self.issued else None
        req = self.planner.poll(self.now, self.source.snapshot(4))
        if req is None:
            return
        if prev is not None and (prev.episode, prev.epoch) == (req.episode, req.epoch):
            answered = prev.seq in self.accepted
            timed_out = self.now - prev.t_sent >= self.planner.config.request_timeout_s
            assert answered or timed_out, "a second request went out while one was in flight"
        self.issued.append(req)
        rows = 8
        tags = np.zeros((rows, 3), dtype=np.float64)
        tags[:, 0], tags[:, 1], tags[:, 2] = self.next_uid, np.arange(rows), req.episode
        self.next_uid += 1
        self.network.append((req, tags))

    def deliver(self, pick: int, duplicate: bool) -> None:
        if not self.network:
            return
        req, tags = self.network[pick % len(self.network)]
        if not duplicate:
            self.network.remove((req, tags))
        latest = self.issued[-1]
        out = self.planner.on_reply(
            self.now, seq=req.seq, episode=req.episode, epoch=req.epoch, chunk_model=tags, chunk_robot=tags
        )
        fresh = (
            req is latest
            and (req.episode, req.epoch) == (self.planner.episode, self.planner.epoch)
            and req.seq not in self.accepted
            and self.now - req.t_sent < self.planner.config.request_timeout_s
        )
        if isinstance(out, DroppedReply):
            assert not fresh, f"valid reply dropped: {out}"
            return
        assert req is latest, "a reply that does not answer the latest request was accepted"
        assert req.seq not in self.accepted, "a reply was accepted twice"
        self.accepted.add(req.seq)
        self.merges.append(out)  # in transit to the queue owner (another actor)

    def apply_merge(self) -> None:
        if self.merges:
            self.source.merge(self.merges.pop(0), self.now)

    def tick(self, check_unique: bool, zero_fallback: bool) -> None:
        out = self.source.tick(self.now)
        assert (out.action is None) == (out.source == "none")
        if out.action is None:
            return
        if out.source == "fallback" and zero_fallback:
            assert not out.action.any()
            return
        assert out.action[2] == self.source.episode, "an action outlived its episode's reset"
        if check_unique and out.source == "queue":
            key = (int(out.action[0]), int(out.action[1]))
            assert key not in self.emitted, f"action {key} emitted twice"
            self.emitted.add(key)


KINDS = [
    *("tick", "tick", "poll", "poll", "poll", "deliver", "deliver", "deliver"),
    *("apply", "apply", "apply", "wait", "reset", "epoch"),
]
EVENTS = st.lists(
    st.tuples(st.sampled_from(KINDS), st.integers(0, 12), st.booleans()), min_size=5, max_size=80
)
WAITS = (0.0, 0.1, 0.35, 1.0)
TIMEOUT = 0.3


CONFIGS = {
    "rtc": st.booleans(),
    "multiplier": st.sampled_from([1, 2]),
    "fallback": st.sampled_from(["hold", "repeat_last", "zero"]),
    "max_age": st.sampled_from([None, 0.5]),
    "clamp": st.booleans(),
}


def run_events(
    events: list[tuple[str, int, bool]],
    *,
    rtc: bool,
    multiplier: int,
    fallback: str,
    max_age: float | None,
    clamp: bool,
) -> Harness:
    """Drive a :class:`Harness` through ``events``; the harness asserts the invariants."""
    if fallback == "zero":
        multiplier = 1  # a zero fallback ramps through the interpolator and mixes tags
    cfg = PlannerConfig(
        rtc_enabled=rtc, request_timeout_s=TIMEOUT, clamp_trim_to_consumed=clamp, prefix_rows=4
    )
    h = Harness(
        planner=RequestPlanner(cfg),
        source=ActionSource(
            n_actions=3,
            rtc_enabled=rtc,
            interpolation_multiplier=multiplier,
            max_action_age_s=max_age,
            fallback=fallback,
        ),
    )
    for kind, n, flag in events:
        if kind == "tick":
            for _ in range(n + 1):
                h.now += DT / multiplier
                h.tick(check_unique=multiplier == 1, zero_fallback=fallback == "zero")
        elif kind == "poll":
            h.poll()
        elif kind == "deliver":
            h.deliver(n, duplicate=flag)
        elif kind == "apply":
            h.apply_merge()
        elif kind == "wait":
            h.now += WAITS[n % len(WAITS)]
        elif kind == "reset":
            h.planner.reset(h.source.reset())
        else:
            h.planner.new_epoch()
        assert h.planner.statistics().merges == len(h.accepted)
    return h


@settings(max_examples=300, deadline=None, database=None)
@given(events=EVENTS, **CONFIGS)
def test_rtc_invariants(events: list[tuple[str, int, bool]], **config: Any) -> None:
    """Never emitted twice, never after a reset, one request in flight, stale replies dropped."""
    run_events(events, **config)


WALK_WEIGHTS = {
    "tick": 30,
    "poll": 20,
    "deliver": 15,
    "apply": 15,
    "wait": 4,
    "reset": 2,
    "epoch": 1,
}


@settings(max_examples=30, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), **CONFIGS)
def test_rtc_invariants_long_walks(seed: int, **config: Any) -> None:
    """The same invariants over long seeded random walks (deep states shrinking rarely finds)."""
    rng = random.Random(seed)
    kinds, weights = list(WALK_WEIGHTS), list(WALK_WEIGHTS.values())
    events = [(rng.choices(kinds, weights)[0], rng.randrange(13), rng.random() < 0.2) for _ in range(800)]
    h = run_events(events, **config)
    assert h.issued  # the walk exercised the planner
