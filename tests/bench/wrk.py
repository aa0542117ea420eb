"""wrk (Debian's package) as the load generator: a Lua script sets the bearer token and POST,
optionally paces requests to a fixed rate, and reports JSON. (wrk always runs for its whole
-d duration: its main thread sleeps that long, so runs are bounded by time, not count.)

wrk is not wrk2: latency is timed from when a request is written, so under a fixed rate a
stalled server delays later sends instead of counting their wait (coordinated omission).
The fixed-rate runs are at about half of saturation, where queues stay short; saturation runs
report latency under a full queue, which is what those numbers mean.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.bench.world import pinned

LUA = r"""
-- Vouch benchmark script for wrk: bearer tokens from a file (rotated per request), a body,
-- and an optional fixed rate per thread (LuaJIT ffi clock). A line "token<TAB>proof" sends
-- the token as `Authorization: DPoP` with that DPoP proof (each line is used once per pass).
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } vouch_timespec;
int clock_gettime(int, vouch_timespec *);
]]
local ts = ffi.new("vouch_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local tokens, n, i = {}, 0, 0
local method, path, body, durations = "GET", "/", nil, false
local interval, next_at, sent = 0, nil, 0
local bad = 0

function init(args)
  method, path = args[1], args[2]
  if args[3] ~= "-" then
    for line in io.lines(args[3]) do
      n = n + 1
      local token, proof = line:match("^([^\t]+)\t(.+)$")
      if token then tokens[n] = {token, proof} else tokens[n] = {line, nil} end
    end
  end
  if args[4] == "@durations" then durations = true
  elseif args[4] ~= "-" then body = args[4] end
  interval = tonumber(args[5])      -- ms between requests of this thread; 0 = no pacing
end

function request()
  local headers = {}
  if n > 0 then
    i = i % n + 1
    local entry = tokens[i]
    if entry[2] then
      headers["Authorization"] = "DPoP " .. entry[1]
      headers["DPoP"] = entry[2]
    else
      headers["Authorization"] = "Bearer " .. entry[1]
    end
  end
  if durations then
    -- a new (token, duration) pair per request, so every request misses the credential cache
    body = '{"duration_s": ' .. (901 + math.floor(sent / math.max(n, 1)) % 2700) .. '}'
  end
  if body then headers["Content-Type"] = "application/json" end
  sent = sent + 1
  return wrk.format(method, path, headers, body)
end

function delay()
  if interval <= 0 then return 0 end
  local now = now_ms()
  if next_at == nil or next_at < now - 1000 then next_at = now end
  next_at = next_at + interval
  local wait = next_at - now
  if wait < 0 then return 0 end
  return math.floor(wait)
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    if bad == 1 then io.stderr:write("wrk: status " .. status .. ": " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local p = {}
  for _, q in ipairs({50, 90, 99, 99.9}) do p[tostring(q)] = latency:percentile(q) end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"p999_us": %d, "mean_us": %f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    p["50"], p["90"], p["99"], p["99.9"], latency.mean, latency.max))
end
"""


class WrkMissing(RuntimeError):
    pass


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(
            "wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu), then rerun "
            "`make bench`; the HTTP benchmarks need it (the in-process ones do not)"
        )
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "p999_ms": self.p999_ms,
            "mean_ms": round(self.mean_ms, 3),
            "max_ms": self.max_ms,
        }


@dataclass
class Wrk:
    workdir: Path
    cpus: str | None = None

    def __post_init__(self) -> None:
        self.binary = require_wrk()
        self.script = self.workdir / "vouch-bench.lua"
        self.script.write_text(LUA)

    def run(
        self,
        url: str,
        *,
        method: str = "GET",
        tokens: Path | None = None,
        body: str | None = None,
        connections: int = 32,
        threads: int = 1,
        seconds: float = 10.0,
        rate: float = 0.0,
    ) -> WrkResult:
        """Load `url` for `seconds`, at `rate` requests per second in all if given."""
        base, _, path = url.partition("//")[2].partition("/")
        interval = threads * 1000.0 / rate if rate > 0 else 0.0
        cmd = [
            self.binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(self.script),
            f"http://{base}/{path}",
            "--",
            method,
            f"/{path}",
            str(tokens) if tokens else "-",
            body if body else "-",
            f"{interval:.4f}",
        ]
        out = subprocess.run(
            pinned(cmd, self.cpus),
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=False,
        )
        line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
        if out.returncode != 0 or line is None:
            raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
        data = json.loads(line.removeprefix("WRKJSON "))
        errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
        return WrkResult(
            requests=data["requests"],
            seconds=data["duration_us"] / 1e6,
            errors=errors,
            p50_ms=data["p50_us"] / 1000,
            p90_ms=data["p90_us"] / 1000,
            p99_ms=data["p99_us"] / 1000,
            p999_ms=data["p999_us"] / 1000,
            mean_ms=data["mean_us"] / 1000,
            max_ms=data["max_us"] / 1000,
        )
