"""Property tests for the pure-Python serving core (serve.sequence, serve.kv_cache, serve.scheduler).

Hypothesis draws workloads (arrival gaps, prompt and output lengths, shared prefixes, EOS or length endings) and
configurations (tiny pools, host pool or none, chunked-prefill budgets, batch limits, quanta, α) and runs them
through `simulate(..., check=True)`, which checks the block manager's and scheduler's invariants, the batch limits
and every sequence's KV contents (through a ShadowKV) after each iteration. On top of that each test checks the
policy's own rules: FCFS preempts the latest arrivals; MLFQ joins, demotes, promotes and orders exactly as defined;
SRPT orders by remaining tokens. Every request must finish exactly once with its exact output length.
"""
import math, random
from collections import Counter

from hypothesis import HealthCheck, given, settings, strategies as st

from fastserve_nb.serve.kv_cache import BlockManager, ShadowKV, random_block_ops
from fastserve_nb.serve.scheduler import POLICIES, Scheduler, SchedulerConfig
from fastserve_nb.serve.simulate import simulate
from fastserve_nb.serve.sequence import SamplingParams, Sequence, SequenceStatus

EOS = 1
SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

configs = st.fixed_dictionaries(dict(
    num_blocks=st.integers(8, 40), block_size=st.sampled_from([1, 2, 4, 8]), num_host_blocks=st.integers(0, 24),
    enable_prefix_caching=st.booleans(), max_num_seqs=st.integers(1, 6), max_num_batched_tokens=st.integers(1, 40),
    base_quantum=st.sampled_from([0.002, 0.005, 0.02]), starvation_alpha=st.sampled_from([0.01, 0.05, 0.5, math.inf]),
    reserve_blocks=st.integers(0, 3), skip_join=st.booleans()))
jobs = st.lists(st.tuples(st.floats(0, 0.03), st.integers(0, 3), st.integers(1, 30), st.integers(1, 20), st.booleans()),
                min_size=1, max_size=20)
PREFIXES = [[], [11, 12, 13, 14, 15, 16, 17, 18, 19], [21, 22, 23, 24, 25], list(range(30, 46))]


def make(policy, cfg, job_list):
    "A scheduler over a fresh block manager, and the requests (clamped to fit the pool) with their target lengths."
    bm = BlockManager(cfg["num_blocks"], cfg["block_size"], cfg["num_host_blocks"], cfg["enable_prefix_caching"])
    sc = SchedulerConfig(policy=policy, enable_swap=cfg["num_host_blocks"] > 0, num_levels=4,
                         **{k: cfg[k] for k in ("max_num_seqs", "max_num_batched_tokens", "base_quantum",
                                                "starvation_alpha", "reserve_blocks", "skip_join")})
    sch = Scheduler(sc, bm, eos_token_ids=[EOS])
    cap, t, reqs = cfg["num_blocks"] * cfg["block_size"], 0.0, []
    for k, (gap, pre, n_new, out, by_eos) in enumerate(job_list):
        t += gap
        prompt = (PREFIXES[pre] + [100 + 7 * k + j for j in range(n_new)])[:max(1, cap // 2)]
        out = max(1, min(out, cap - len(prompt) - 2))
        # ending by EOS: max_tokens leaves room for 2 tokens more than the EOS position (and the pool still fits it)
        s = Sequence(prompt, SamplingParams(max_tokens=out + 2 if by_eos else out), arrival_time=t)
        s.oracle_output_len, s.ends_by_eos = out, by_eos
        reqs.append(s)
    return sch, reqs


def sample(s):
    "The fake model: EOS at the target length for requests meant to end by EOS, token 2 everywhere else."
    return EOS if s.ends_by_eos and s.num_output_tokens + 1 == s.oracle_output_len else 2


def run_and_check(sch, reqs, depth=1):
    finished, update = [], sch.update
    def recording_update(batch, tokens, now, dt):
        done = update(batch, tokens, now, dt)
        finished.extend(done)
        return done
    sch.update = recording_update
    simulate(sch, reqs, sample=sample, check=True, max_steps=20_000, depth=depth)
    assert Counter(s.seq_id for s in finished) == Counter(s.seq_id for s in reqs)      # each exactly once
    for s in reqs:
        assert s.status == SequenceStatus.FINISHED and s.num_output_tokens == s.oracle_output_len, s
        assert s.finish_reason == ("stop" if s.ends_by_eos else "length"), s
        assert s.output_token_ids[-1] == (EOS if s.finish_reason == "stop" else 2) and not s.block_table
        assert s.first_scheduled_time <= s.first_token_time <= s.finish_time and len(s.token_times) == s.num_output_tokens
    bm = sch.block_manager
    assert bm.num_free_blocks == bm.num_blocks and bm.num_free_host_blocks + len(bm.host_blocks_in_flight) == bm.num_host_blocks
    assert not sch.has_unfinished() and not bm.seqs and not bm.swapped


@settings(**SETTINGS)
@given(cfg=configs, job_list=jobs)
def test_fcfs_preempts_latest_arrivals(cfg, job_list):
    sch, reqs = make("fcfs", cfg, job_list)
    schedule = sch.schedule
    def checked_schedule(now):
        running_before = list(sch.running)
        batch = schedule(now)
        key = lambda s: (s.arrival_time, s.seq_id)
        for p in batch.preempted:                   # victims: the latest arrivals of the running set
            assert p in running_before and all(key(r) < key(p) for r in sch.running), (p, sch.running)
        assert not batch.swap_out and not batch.swap_in
        return batch
    sch.schedule = checked_schedule
    run_and_check(sch, reqs)


class MLFQAudit:
    "Wraps a scheduler and checks skip-join, promotion, demotion and priority order against their definitions."
    def __init__(self, sch):
        self.sch, self.cfg = sch, sch.config
        self.add, self.schedule, self.update = sch.add, sch.schedule, sch.update
        sch.add, sch.schedule, sch.update = self.audited_add, self.audited_schedule, self.audited_update

    def snap(self):
        return {s.seq_id: (s.queue_level, s.service_in_level, s.last_run_time) for s in self.sch.seqs.values()}

    def audited_add(self, seq):
        self.add(seq)
        cfg, t = self.cfg, self.sch.prefill_time(seq.num_prompt_tokens)
        want = 0 if not cfg.skip_join else min([l for l in range(cfg.num_levels) if cfg.quantum(l) >= t], default=cfg.num_levels - 1)
        assert seq.queue_level == want and seq.service_in_level == 0

    def audited_schedule(self, now):
        before = self.snap()
        batch = self.schedule(now)
        for sid, (lvl, svc, last) in before.items():
            promote = lvl > 0 and now - last >= self.cfg.starvation_alpha
            assert self.sch.seqs[sid].queue_level == (0 if promote else lvl)
        order = [s.seq_id for s in self.sch.priority_order()]
        it = iter(order)
        assert all(s.seq_id in it for s in batch.seqs), "batch not in priority order"
        return batch

    def audited_update(self, batch, tokens, now, dt):
        before = self.snap()
        done = self.update(batch, tokens, now, dt)
        ran = {s.seq_id for s in batch.seqs}
        for sid, (lvl, svc, last) in before.items():
            s = self.sch.seqs.get(sid)
            if s is None: continue
            if sid not in ran:
                assert (s.queue_level, s.service_in_level, s.last_run_time) == (lvl, svc, last)
                continue
            demote = lvl < self.cfg.num_levels - 1 and svc + dt >= self.cfg.quantum(lvl) * (1 - 1e-9)
            assert s.queue_level == (lvl + 1 if demote else lvl) and s.last_run_time == now
            assert math.isclose(s.service_in_level, 0.0 if demote else svc + dt, abs_tol=1e-12)
        return done


@settings(**SETTINGS)
@given(cfg=configs, job_list=jobs)
def test_mlfq_rules(cfg, job_list):
    sch, reqs = make("mlfq", cfg, job_list)
    MLFQAudit(sch)
    run_and_check(sch, reqs)


@settings(max_examples=25, deadline=None)
@given(job_list=jobs, seqs=st.integers(1, 4))
def test_mlfq_plentiful_memory_takes_a_prefix_of_the_queues(job_list, seqs):
    "With memory to spare nothing is skipped: the batch is exactly the first jobs of Q1, Q2, ... in FIFO order."
    cfg = dict(num_blocks=400, block_size=4, num_host_blocks=0, enable_prefix_caching=True, max_num_seqs=seqs,
               max_num_batched_tokens=64, base_quantum=0.004, starvation_alpha=0.05, reserve_blocks=0, skip_join=True)
    sch, reqs = make("mlfq", cfg, job_list)
    schedule = sch.schedule
    def checked(now):
        batch = schedule(now)
        order = sch.priority_order()
        assert batch.seqs == order[:len(batch.seqs)]
        return batch
    sch.schedule = checked
    run_and_check(sch, reqs)


@settings(**SETTINGS)
@given(cfg=configs, job_list=jobs)
def test_srpt_order(cfg, job_list):
    sch, reqs = make("srpt", cfg, job_list)
    schedule = sch.schedule
    def checked(now):
        batch = schedule(now)
        order = sorted(sch.seqs.values(), key=lambda s: (s.oracle_output_len - s.num_output_tokens, s.arrival_time, s.seq_id))
        it = iter(order)
        assert all(s in it for s in batch.seqs)
        return batch
    sch.schedule = checked
    run_and_check(sch, reqs)


@settings(**SETTINGS)
@given(policy=st.sampled_from(POLICIES), cfg=configs, job_list=jobs, seed=st.integers(0, 10**6))
def test_aborts_and_stop_strings(policy, cfg, job_list, seed):
    "The engine aborts requests or finishes them on a stop string at any point, even between schedule and update."
    import random
    rng = random.Random(seed)
    sch, reqs = make(policy, cfg, job_list)
    kv, now, ended = ShadowKV(sch.block_manager), 0.0, {}
    for s in reqs: sch.add(s)
    for _ in range(100_000):
        if not sch.has_unfinished(): break
        batch = sch.schedule(now)
        kv.swap(batch.swap_out, batch.swap_in)
        for s, n in batch.entries: kv.compute(s, n)
        tokens = {s.seq_id: sample(s) if s.num_computed_tokens + n == s.num_tokens else None for s, n in batch.entries}
        if batch.entries and rng.random() < 0.1:                      # abort mid-iteration
            victim = rng.choice(batch.seqs)
            assert sch.abort(victim.seq_id) is victim and not victim.block_table
            ended[victim.seq_id] = "abort"
        now += 0.01
        for s in sch.update(batch, tokens, now, 0.01): ended[s.seq_id] = s.finish_reason
        live = list(sch.seqs.values())
        if live and rng.random() < 0.1:                               # a stop string matched in the text
            s = rng.choice(live)
            sch.finish(s, "stop", now); ended[s.seq_id] = "stop"
        sch.check_invariants()
        for s in sch.block_manager.seqs.values(): assert kv.read(s) == s.token_ids[:s.num_computed_tokens]
    assert set(ended) == {s.seq_id for s in reqs} and all(s.finish_reason == ended[s.seq_id] for s in reqs)
    assert sch.block_manager.num_free_blocks == sch.block_manager.num_blocks


def test_prefix_cache_hits_reuse_blocks():
    "A second wave of requests with the first wave's prompts reuses its blocks instead of recomputing them."
    for policy in POLICIES:
        bm = BlockManager(64, 4)
        sch = Scheduler(SchedulerConfig(policy=policy, reserve_blocks=0), bm)
        system = list(range(500, 512))                                 # 3 full blocks of shared system prompt
        wave1 = [Sequence(system + [600 + i], SamplingParams(max_tokens=3), arrival_time=0.0) for i in range(3)]
        simulate(sch, wave1, sample=lambda s: 2, check=True)
        assert bm.num_free_blocks == 64 and len(bm.hash_to_block_id) >= 3
        wave2 = [Sequence(system + [700 + i], SamplingParams(max_tokens=3), arrival_time=1.0) for i in range(3)]
        for s in wave2: sch.add(s)
        batch = sch.schedule(1.0)
        assert [n for _, n in batch.entries] == [1, 1, 1], batch.entries        # only the last token is computed
        tables = [s.block_table[:3] for s in wave2]
        assert tables[0] == tables[1] == tables[2] and all(bm.blocks[b].ref_count == 3 for b in tables[0])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), num_blocks=st.integers(4, 20), block_size=st.sampled_from([1, 2, 4]),
       num_host_blocks=st.integers(0, 12), caching=st.booleans())
def test_block_manager_random_ops(seed, num_blocks, block_size, num_host_blocks, caching):
    random_block_ops(seed, steps=300, num_blocks=num_blocks, block_size=block_size, num_host_blocks=num_host_blocks,
                     enable_prefix_caching=caching)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), policy=st.sampled_from(["mlfq", "srpt"]))
def test_no_livelock_when_recompute_is_the_only_way_out(seed, policy):
    """A tiny pool, no host pool, quanta shorter than an iteration and a short α: jobs keep displacing each other.
    Recompute only ever discards the work of later arrivals, so the oldest job always progresses and all finish."""
    import random
    rng = random.Random(seed)
    t, reqs = 0.0, []
    for _ in range(30):
        t += rng.expovariate(30.0)
        s = Sequence([rng.randrange(100) for _ in range(rng.randrange(1, 40))], SamplingParams(max_tokens=rng.randrange(1, 30)),
                     arrival_time=t)
        s.oracle_output_len, s.ends_by_eos = s.sampling_params.max_tokens, False
        reqs.append(s)
    cfg = SchedulerConfig(policy=policy, max_num_seqs=4, max_num_batched_tokens=16, base_quantum=0.002,
                          starvation_alpha=0.05, reserve_blocks=2, enable_swap=False)
    run_and_check(Scheduler(cfg, BlockManager(24, 4)), reqs)


@settings(**SETTINGS)
@given(cfg=configs, job_list=jobs, policy=st.sampled_from(POLICIES), depth=st.integers(2, 4))
def test_iterations_in_flight(cfg, job_list, policy, depth):
    """A pipeline keeps `depth` iterations in flight: each batch comes from the sequences not in flight, which are never
    scheduled, preempted or swapped meanwhile (checked in `simulate`); everything still finishes, exactly once, with
    its KV intact and every block back."""
    sch, reqs = make(policy, cfg, job_list)
    run_and_check(sch, reqs, depth)



@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6))
def test_swap_round_trips_are_bounded_by_progress(seed):
    """Under swap pressure at about 1.5 × capacity (16 slots, KV for about a third of them), a sequence leaves for the
    host pool only after producing a token since it last came back: swap-outs ≤ output tokens + 1, for every sequence."""
    rng = random.Random(seed)
    bm = BlockManager(num_blocks=96, block_size=16, num_host_blocks=1024)
    sch = Scheduler(SchedulerConfig(policy="mlfq", max_num_seqs=16), bm, prefill_time=lambda n: 0.018 + 1e-4 * n)
    t, reqs = 0.0, []
    for _ in range(80):
        t += rng.expovariate(15.0)
        out = max(1, min(256, round(rng.lognormvariate(math.log(64) - 0.72, 1.2))))    # log-normal, mean 64, σ 1.2
        reqs.append(Sequence([rng.randrange(32000) for _ in range(rng.randint(16, 256))], SamplingParams(max_tokens=out), arrival_time=t))
    swap_outs, on_host, schedule = Counter(), set(), sch.schedule
    def counted(now, *a):
        batch = schedule(now, *a)
        now_on_host = {s.seq_id for s in reqs if s.status == SequenceStatus.SWAPPED}
        swap_outs.update(now_on_host - on_host)
        on_host.clear(); on_host.update(now_on_host)
        return batch
    sch.schedule = counted
    simulate(sch, reqs, check=True)
    assert all(s.num_output_tokens == s.sampling_params.max_tokens for s in reqs) and sum(swap_outs.values()) > 0
    assert all(swap_outs[s.seq_id] <= s.num_output_tokens + 1 for s in reqs), max((swap_outs[s.seq_id], s.num_output_tokens) for s in reqs)
