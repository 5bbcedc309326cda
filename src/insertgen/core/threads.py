"""How many threads a process computes with, and how its idle threads wait, chosen so that a busy
neighbour does not make training and sampling collapse while an idle machine loses nothing.

torch's CPU wheels parallelise through GNU OpenMP (libgomp), and MKL's matrix products run on the same
thread team. When a parallel region ends, each worker thread *spins* (busy-waits) for ``GOMP_SPINCOUNT``
iterations (300,000 by default) before it sleeps. On an idle machine that saves a wake-up between two
regions; beside another busy process it is a collapse: the spinning threads take time slices from the
thread that still has work, every fork-join barrier waits for a thread the scheduler has put behind the
neighbour, and training steps were measured 2.7-4.9 times and sampling up to 43 times slower than idle.

Measured here (``insertgen bench --busy --policy ...``, docs/lab/results-notebook.md "Speed beside other work"): no
fixed wait setting serves both cases. A passive wait or any spin bound short enough to hold up beside a
neighbour costs up to 80% of an idle step (most in sampling, whose regions are short); a spin long enough
to be free when idle collapses beside one. What holds up is a team that does not outnumber the free
cores, since a single thread never waits at a barrier. So the default is *adaptive*:

* the OpenMP runtime keeps its own (idle-optimal) wait policy, and
* a :class:`ThreadGovernor` re-decides the thread count every ``interval`` seconds of computing: the
  cores this process may use, minus the cores that other processes kept busy over the last interval
  (``/proc/stat`` minus this process's own CPU time), at least one. It lowers the count at once and
  raises it only after two intervals that agree. :func:`govern` attaches it to a model's Transformer
  trunks (a forward pre-hook, so it runs on the computing thread, where ``torch.set_num_threads`` acts).

``--threads N`` (every computing command) fixes the count instead: float reductions depend on the thread
count, so a run is bit-identical to another (and ``--resume`` to an uninterrupted run) only at a fixed
count. ``OMP_NUM_THREADS`` set by the user (or by torchrun, for several processes per machine) fixes it
too. The count a run starts with and every change are recorded (config.json, the ``threads`` field of
metrics.jsonl).

The wait policy itself can be chosen with ``INSERTGEN_THREAD_POLICY`` (read when ``insertgen`` is
imported, before torch loads; never over the user's own ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT``):
``runtime`` (the default: the runtime's own), ``passive`` (``OMP_WAIT_POLICY=PASSIVE``) or ``spin:N``
(``GOMP_SPINCOUNT=N``); ``bench --busy`` compares them.
"""

from __future__ import annotations

import math
import os
import sys
import time

from insertgen.core.errors import InsertgenError

POLICY_VARIABLE = "INSERTGEN_THREAD_POLICY"
# what the OpenMP runtime reads of its wait behaviour; either set by the user disables the policy
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
DEFAULT_POLICY = "runtime"
POLICIES = ("runtime", "passive", "spin:N")
GOVERNOR_INTERVAL_S = 1.0


def policy_settings(policy: str) -> dict[str, str]:
    """The environment variables that wait policy ``policy`` sets (see the module docstring)."""
    if policy == "runtime":
        return {}
    if policy == "passive":
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    if policy.startswith("spin:"):
        count = policy[len("spin:"):]
        if count.isdigit():
            return {"GOMP_SPINCOUNT": str(int(count))}
    raise InsertgenError(f"{POLICY_VARIABLE}={policy!r}: unknown thread policy; choose one of {', '.join(POLICIES)} "
                         f"(N a non-negative integer)")


def apply_thread_policy(environ=None) -> dict[str, str]:
    """Write the chosen wait policy's variables into ``environ`` (default ``os.environ``) unless torch is
    already loaded or the user set a wait variable; returns what was set ({} when nothing was). A bad
    ``INSERTGEN_THREAD_POLICY`` is reported on stderr and the default used (this runs at import time,
    where an exception would hide every other message)."""
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(name in environ for name in WAIT_VARIABLES):
        return {}
    try:
        settings = policy_settings(environ.get(POLICY_VARIABLE, DEFAULT_POLICY))
    except InsertgenError as e:
        print(f"warning: {e}; using {DEFAULT_POLICY!r}", file=sys.stderr)
        settings = policy_settings(DEFAULT_POLICY)
    environ.update(settings)
    return settings


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity; all of them where the platform has none)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return list(range(os.cpu_count() or 1))


def allowed_cores() -> int:
    """How many CPUs this process may run on."""
    return len(allowed_cpus())


def resolve_threads(threads: int | str | None) -> int | None:
    """The fixed thread count asked for, checked against the cores this process may use, or None for an
    adaptive count (``threads`` None or "auto" while ``OMP_NUM_THREADS`` is unset; when it is set, it
    fixes the count, as torchrun does for several processes per machine)."""
    allowed = allowed_cores()
    if threads is None or threads == "auto":
        value = os.environ.get("OMP_NUM_THREADS", "")
        return min(int(value), allowed) if value.isdigit() and int(value) > 0 else None
    if isinstance(threads, str):
        if not threads.lstrip("-").isdigit():
            raise InsertgenError(f"--threads {threads!r}: give a whole number of threads, at least 1, or 'auto'")
        threads = int(threads)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InsertgenError(f"--threads {threads!r}: give a whole number of threads, at least 1, or 'auto'")
    if threads > allowed:
        raise InsertgenError(f"--threads {threads}: this process may run on {allowed} core(s) only "
                             f"(its CPU affinity); give at most {allowed}")
    return threads


def machine_busy_seconds(cpus) -> float | None:
    """CPU seconds the given CPUs have spent busy since boot (``/proc/stat``: user, nice, system, irq,
    softirq; idle, iowait and steal excluded), or None where that cannot be read."""
    try:
        lines = open("/proc/stat", encoding="ascii").read().splitlines()
    except OSError:
        return None
    wanted, ticks = {f"cpu{c}" for c in cpus}, 0
    for line in lines:
        fields = line.split()
        if fields and fields[0] in wanted:
            user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
            ticks += user + nice + system + irq + softirq
    return ticks / os.sysconf("SC_CLK_TCK") if ticks else None


class ThreadGovernor:
    """Threads = the cores this process may use minus the cores other processes kept busy, at least one:

        n = max(1, min(most, floor(cores - others + 1/2))),   others = (d busy(cores) - d own CPU) / d wall

    over the last ``interval`` seconds. :meth:`tick` is cheap (a clock read) between decisions; a lower
    count takes effect at once, a higher one only after two intervals that both allow it (a neighbour
    that pauses for a moment does not make the team grow and collapse again). ``set_threads`` is called
    on the thread that ticks (OpenMP's team size belongs to the thread that opens parallel regions). When
    the count in force (``get_threads``) is not the one the governor set, someone else (the user's
    ``torch.set_num_threads``) chose it: the governor stands down for good."""

    def __init__(self, most: int, cpus=None, interval: float = GOVERNOR_INTERVAL_S, clock=time.monotonic,
                 busy=machine_busy_seconds, own=time.process_time, set_threads=None, get_threads=None):
        import torch  # torch loads only after the thread policy is set (module docstring)

        self.most, self.cpus, self.interval = most, list(cpus if cpus is not None else allowed_cpus()), interval
        self.clock, self.busy, self.own = clock, busy, own
        self.set_threads = set_threads or torch.set_num_threads
        self.get_threads = get_threads or torch.get_num_threads
        self.threads = most
        self.active = True
        self.changes: list[tuple[float, int, float]] = []  # (seconds since start, new count, others' cores)
        self._start = self.clock()
        self._mark = None
        self._raise_votes = 0

    def tick(self) -> int:
        """Re-decide when an interval has passed; returns the thread count in force."""
        now = self.clock()
        if not self.active or (self._mark is not None and now - self._mark[0] < self.interval):
            return self.threads
        if self.get_threads() != self.threads:
            self.active = False
            return self.threads
        busy, own = self.busy(self.cpus), self.own()
        if busy is None:
            return self.threads
        if self._mark is not None:
            wall = now - self._mark[0]
            others = max(0.0, (busy - self._mark[1]) - (own - self._mark[2])) / wall
            self._decide(others, now)
        self._mark = (now, busy, own)
        return self.threads

    def _decide(self, others: float, now: float) -> None:
        target = max(1, min(self.most, math.floor(len(self.cpus) - others + 0.5)))
        if target > self.threads:
            self._raise_votes += 1
            if self._raise_votes < 2:
                return
        self._raise_votes = 0
        if target != self.threads:
            self.threads = target
            self.set_threads(target)
            self.changes.append((round(now - self._start, 3), target, round(others, 3)))


_GOVERNOR: list[ThreadGovernor] = []  # the process's governor while its thread count is adaptive


def use_threads(threads: int | str | None) -> int | None:
    """Make torch compute with ``threads`` threads (a fixed count, :func:`resolve_threads`), or with an
    adaptive count starting at every allowed core (``None`` / "auto"): models that :func:`govern` then
    adjust it. Returns the fixed count, or None when adaptive."""
    import torch  # torch loads only after the thread policy is set (module docstring)

    fixed = resolve_threads(threads)
    _GOVERNOR.clear()
    if fixed is None:
        most = allowed_cores()
        torch.set_num_threads(most)
        if most > 1:
            _GOVERNOR.append(ThreadGovernor(most))
    else:
        torch.set_num_threads(fixed)
    return fixed


def govern(model) -> None:
    """Attach the process's governor (if its thread count is adaptive) to every trunk of ``model`` (each
    module whose class sets ``thread_governed = True``: the Transformer of insertgen.nn): it ticks before
    each trunk evaluation, in training and in sampling alike."""
    if not _GOVERNOR:
        return
    import torch  # torch loads only after the thread policy is set (module docstring)

    governor = _GOVERNOR[0]

    @torch.compiler.disable
    def tick(module, args):
        governor.tick()

    for module in model.modules():
        if getattr(type(module), "thread_governed", False) and not getattr(module, "_insertgen_governed", False):
            module.register_forward_pre_hook(tick)
            module._insertgen_governed = True


def thread_report() -> dict:
    """What this process computes with: the thread count (now, and whether it adapts), the cores it may
    use, the wait settings the OpenMP runtime was given and the governor's changes so far."""
    import torch  # torch loads only after the thread policy is set (module docstring)

    report = {"threads": torch.get_num_threads(), "adaptive": bool(_GOVERNOR), "allowed_cores": allowed_cores(),
              "policy": os.environ.get(POLICY_VARIABLE, DEFAULT_POLICY),
              **{name: os.environ[name] for name in WAIT_VARIABLES if name in os.environ}}
    if _GOVERNOR:
        report["changes"] = list(_GOVERNOR[0].changes)
    return report
