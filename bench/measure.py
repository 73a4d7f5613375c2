"""Run a command and measure it: wall time, peak RSS of its process tree, I/O, CPU time.

Used by the benchmarks; also a CLI::

    python bench/measure.py [--max-rss GIB] [--inputs PATH ...] [--outputs PATH ...]
                            [--cache warm|cold|none] [--json FILE] [--log FILE] -- CMD ...

What is measured (Linux):

* ``wall_s``: from start to exit of the top process.
* ``peak_rss_gib``: the peak, over 50 ms polls, of the RSS summed over the process tree
  (``/proc/<pid>/status`` VmRSS of the process and every descendant). RSS includes file-backed
  pages that a process has mapped (safetensors files read with mmap count while mapped), so
  ``peak_anon_gib`` (RssAnon: heap, tensors the process allocated itself) and ``peak_file_gib``
  (RssFile: mapped file pages, which the kernel can drop under pressure) are reported as well.
  A 50 ms poll can miss a spike shorter than that.
* ``io``: ``/proc/<pid>/io`` of the top process read while it is a zombie (``waitid`` with
  ``WNOWAIT``), so it includes every descendant it waited for. ``rchar``/``wchar`` are bytes
  passed through read()/write() syscalls (page cache hits included, mmap page faults NOT
  included); ``read_bytes``/``write_bytes`` are bytes that went to/from the block device
  (read_bytes is ~0 when the inputs are in the page cache; write_bytes counts dirty pages
  as they are submitted, so it may lag behind a process that exits before writeback).
  So for tools that mmap their inputs the honest "bytes read" is the size of the input files
  (``input_bytes``); ``output_bytes`` is the size on disk of what the tool wrote.
* ``cpu_user_s``/``cpu_sys_s``: rusage of the top process and its waited-for descendants.
* ``other_cpu_s``: CPU seconds the rest of the machine used during the run (system busy time
  from /proc/stat minus the tree's own): a measure of how much other load disturbed the run.
  ``idle_wait_s`` > 0 first waits (up to that long) for the CPUs to be mostly idle.
* Watchdog: if the tree RSS exceeds ``max_rss_gib`` the whole process group is killed
  (SIGKILL) and ``killed`` says ``"killed: exceeded N GiB"``.

Page cache: ``cache="warm"`` (default) reads every input file fully once (16 MB chunks) before
the run, so all tools start with their inputs in the page cache; ``cache="cold"`` does
``sync`` + ``echo 3 > /proc/sys/vm/drop_caches`` (needs root; falls back to warm with a note);
``cache="none"`` leaves the cache as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024 ** 3
CHUNK = 16 * 1024 * 1024


# ---------------------------------------------------------------------------------------------
# files


def iter_files(paths) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.is_file())
        elif p.is_file():
            out.append(p)
    return out


def disk_bytes(paths, suffixes: tuple[str, ...] | None = None) -> int:
    """Total apparent size of the files under ``paths`` (optionally only these suffixes)."""
    total = 0
    for f in iter_files(paths):
        if suffixes is None or f.name.endswith(suffixes):
            total += f.stat().st_size
    return total


def read_fully(paths, chunk: int = CHUNK) -> int:
    """Sequentially read every byte of the files (into one reused buffer). Returns bytes read."""
    buf = bytearray(chunk)
    mv = memoryview(buf)
    total = 0
    for f in iter_files(paths):
        with open(f, "rb", buffering=0) as fh:
            while True:
                n = fh.readinto(mv)
                if not n:
                    break
                total += n
    return total


def drop_caches() -> str | None:
    """Drop the page cache. Returns None on success, else why not."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return None
    except OSError as e:
        return f"cannot drop caches ({e})"


def prepare_cache(mode: str, inputs) -> str:
    if mode == "cold":
        why = drop_caches()
        if why is None:
            return "cold (sync + drop_caches before the run)"
        read_fully(inputs)
        return f"warm ({why}; inputs pre-read once instead)"
    if mode == "warm":
        read_fully(inputs)
        return "warm (inputs pre-read once before the run)"
    return "as is"


# ---------------------------------------------------------------------------------------------
# /proc


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may contain spaces/parens: split after the last ')'
        rest = data[data.rfind(b")") + 2:].split()
        try:
            ppid = int(rest[1])
        except (IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def process_tree(root: int) -> list[int]:
    kids = _children_map()
    out, stack = [], [root]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, ()))
    return out


def _status_kib(pid: int) -> tuple[int, int, int]:
    """(VmRSS, RssAnon, RssFile + RssShmem) in KiB; zeros if gone."""
    rss = anon = file_ = 0
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
                elif line.startswith(("RssFile:", "RssShmem:")):
                    file_ += int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, anon, file_


def read_proc_io(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/io") as fh:
            for line in fh:
                k, _, v = line.partition(":")
                out[k.strip()] = int(v)
    except (OSError, ValueError):
        pass
    return out


# ---------------------------------------------------------------------------------------------
# the measurement


def _busy_cpu_s() -> float:
    """System-wide busy CPU seconds so far (all cores), from /proc/stat."""
    with open("/proc/stat") as fh:
        parts = fh.readline().split()[1:]
    vals = [int(x) for x in parts]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    busy = sum(vals[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_idle(max_wait_s: float = 180.0, busy_frac: float = 0.15, window_s: float = 2.0,
                  verbose: bool = True) -> dict:
    """Wait (up to max_wait_s) until the machine's CPUs are mostly idle for one window."""
    ncpu = os.cpu_count() or 1
    t0 = time.perf_counter()
    while True:
        b0 = _busy_cpu_s()
        time.sleep(window_s)
        frac = (_busy_cpu_s() - b0) / (window_s * ncpu)
        waited = time.perf_counter() - t0
        if frac <= busy_frac or waited >= max_wait_s:
            if verbose and waited > window_s * 1.5:
                print(f"[measure] waited {waited:.0f} s for an idle machine (busy {frac:.0%})", flush=True)
            return {"waited_s": round(waited, 1), "busy_frac_before": round(frac, 3),
                    "idle": frac <= busy_frac}


def measure(cmd: list[str], *, max_rss_gib: float = 20.0, inputs=(), outputs=(),
            cache: str = "warm", poll_s: float = 0.05, timeout_s: float | None = None,
            env: dict | None = None, cwd: str | None = None, log_path: str | None = None,
            label: str | None = None, verbose: bool = True, idle_wait_s: float = 0.0) -> dict:
    inputs = [str(p) for p in inputs]
    os.sync()  # earlier runs' dirty pages are not written back on this run's time
    cache_note = prepare_cache(cache, inputs) if inputs else "no inputs given"
    input_bytes = disk_bytes(inputs)
    idle = wait_for_idle(idle_wait_s, verbose=verbose) if idle_wait_s > 0 else None
    busy0 = _busy_cpu_s()

    log_fh = open(log_path, "wb") if log_path else subprocess.DEVNULL
    if verbose:
        shown = ' '.join(map(str, cmd))
        shown = shown if len(shown) <= 400 else shown[:400] + ' ...'
        print(f"[measure] {label or cmd[0]}: {shown}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=log_fh, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, start_new_session=True)
    pid = proc.pid
    peak = peak_anon = peak_file = 0
    peak_procs = 1
    killed = None
    timeline: list[tuple[float, float]] = []
    last_tl = -1.0
    io: dict[str, int] = {}
    try:
        while True:
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if info is not None:  # exited: still a zombie, its /proc/<pid>/io is readable
                io = read_proc_io(pid)
                break
            tree = process_tree(pid)
            rss = anon = file_ = 0
            for p in tree:
                a, b, c = _status_kib(p)
                rss += a
                anon += b
                file_ += c
            now = time.perf_counter() - t0
            peak = max(peak, rss)
            peak_anon = max(peak_anon, anon)
            peak_file = max(peak_file, file_)
            peak_procs = max(peak_procs, len(tree))
            if now - last_tl >= 0.5:
                timeline.append((round(now, 2), round(rss / 1024 / 1024, 3)))
                last_tl = now
            if rss * 1024 > max_rss_gib * GIB and killed is None:
                killed = f"killed: exceeded {max_rss_gib:g} GiB"
                _kill_group(pid)
            if timeout_s is not None and now > timeout_s and killed is None:
                killed = f"killed: exceeded timeout {timeout_s:g} s"
                _kill_group(pid)
            time.sleep(poll_s)
    except BaseException:
        _kill_group(pid)
        raise
    finally:
        wall = time.perf_counter() - t0
        busy = _busy_cpu_s() - busy0
        _, status, ru = os.wait4(pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        _kill_group(pid)  # leftovers (daemons) of the tree
        if log_path:
            log_fh.close()

    output_bytes = disk_bytes(outputs)
    res = {
        "label": label,
        "cmd": [str(c) for c in cmd],
        "returncode": proc.returncode,
        "ok": proc.returncode == 0 and killed is None,
        "killed": killed,
        "wall_s": round(wall, 3),
        "cpu_user_s": round(ru.ru_utime, 2),
        "cpu_sys_s": round(ru.ru_stime, 2),
        "other_cpu_s": round(max(0.0, busy - ru.ru_utime - ru.ru_stime), 2),
        "idle_wait": idle,
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "peak_rss_gib": round(peak / 1024 / 1024, 4),
        "peak_anon_gib": round(peak_anon / 1024 / 1024, 4),
        "peak_file_gib": round(peak_file / 1024 / 1024, 4),
        "peak_procs": peak_procs,
        "max_rss_single_gib": round(ru.ru_maxrss / 1024 / 1024, 4),
        "io": io,
        "rchar_gib": round(io.get("rchar", 0) / GIB, 3),
        "wchar_gib": round(io.get("wchar", 0) / GIB, 3),
        "read_bytes_gib": round(io.get("read_bytes", 0) / GIB, 3),
        "write_bytes_gib": round(io.get("write_bytes", 0) / GIB, 3),
        "input_bytes": input_bytes,
        "output_bytes": output_bytes,
        "input_gib": round(input_bytes / GIB, 3),
        "output_gib": round(output_bytes / GIB, 3),
        "cache": cache_note,
        "max_rss_limit_gib": max_rss_gib,
        "log": log_path,
        "rss_timeline_gib": timeline,
    }
    if verbose:
        state = killed or ("ok" if res["ok"] else f"exit {proc.returncode}")
        print(f"[measure] {label or cmd[0]}: {state}; wall {res['wall_s']:.2f} s, peak RSS "
              f"{res['peak_rss_gib']:.3f} GiB (anon {res['peak_anon_gib']:.3f}, file-backed "
              f"{res['peak_file_gib']:.3f}), rchar {res['rchar_gib']:.2f} GiB, wchar "
              f"{res['wchar_gib']:.2f} GiB, out {res['output_gib']:.2f} GiB; cpu {res['cpu_user_s'] + res['cpu_sys_s']:.1f} s, "
              f"other load {res['other_cpu_s']:.1f} cpu-s", flush=True)
    return res


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-rss", type=float, default=20.0, help="GiB; kill the tree above this")
    ap.add_argument("--inputs", nargs="*", default=[], help="input files/folders (pre-read, sized)")
    ap.add_argument("--outputs", nargs="*", default=[], help="output files/folders (sized after)")
    ap.add_argument("--cache", choices=["warm", "cold", "none"], default="warm")
    ap.add_argument("--timeout", type=float, default=None)
    ap.add_argument("--idle-wait", type=float, default=0.0, help="wait up to S s for idle CPUs")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--log", help="command's stdout+stderr go here (else discarded)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd:
        ap.error("no command")
    res = measure(cmd, max_rss_gib=a.max_rss, inputs=a.inputs, outputs=a.outputs, cache=a.cache,
                  timeout_s=a.timeout, log_path=a.log, idle_wait_s=a.idle_wait)
    text = json.dumps(res, indent=2)
    if a.json:
        Path(a.json).write_text(text + "\n")
    else:
        print(text)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
