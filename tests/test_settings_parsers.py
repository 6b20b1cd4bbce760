"""The pure parsers that stand in for real ones, judged by the real ones.

Settings run inside `pulumi up` on the operator's machine, which may have neither Go nor systemd,
so durations and OnCalendar expressions are read by reimplementations; here Go's own
`time.ParseDuration` and `systemd-analyze calendar` (both on the test machines) are the oracles.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from components.settings import calendar, checks

GO_PROGRAM = """package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

func main() {
	var corpus []string
	if err := json.NewDecoder(os.Stdin).Decode(&corpus); err != nil {
		panic(err)
	}
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for _, s := range corpus {
		d, err := time.ParseDuration(s)
		if err != nil {
			fmt.Fprintln(out, "error")
		} else {
			fmt.Fprintln(out, int64(d))
		}
	}
}
"""

DURATIONS = [
    "0", "+0", "-0", "", "1h", "12h", "30m", "1h30m", "1.5h", "90m", "45s", "1h0m0s", "2h45m", "300ms", "1.5s",
    "1us", "1µs", "1μs", "10ns", ".5h", "5.h", "1.h", "h", "1", "12", "1d", "1w", "1H", "1 h", " 1h", "1h ", "1h 30m",
    "-1h", "+1h", "1m1h", "1h1h", "--1h", "1..5h", "0.000000001s", "0.0000000001s", "1.0000000000000000000001h",
    "2562047h", "2562048h", "9223372036854775807ns", "9223372036854775808ns", "-9223372036854775808ns",
    "99999999999999999999h", "1e3s", "0x10s", "1_000s", "١h", "3.333333333333333333h", "0.1ms",
]


def test_go_duration_reads_every_corpus_entry_as_go_does(tmp_path: Path) -> None:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    source = tmp_path / "main.go"
    source.write_text(GO_PROGRAM)
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "GO111MODULE": "off", "GOPROXY": "off"}
    done = subprocess.run([go, "run", str(source)], input=json.dumps(DURATIONS), capture_output=True, text=True,
                          env=env, timeout=300, check=True)
    answers = done.stdout.splitlines()
    assert len(answers) == len(DURATIONS)
    for text, answer in zip(DURATIONS, answers):
        try:
            ours = str(checks.go_duration_ns(text))
        except ValueError:
            ours = "error"
        assert ours == answer, text


def test_settings_durations_are_go_durations_of_whole_positive_seconds() -> None:
    assert checks.duration("1.5h") == dt.timedelta(minutes=90)
    for text in ("0", "-1h", "1.5s", "300ms", "1d"):
        with pytest.raises(ValueError):
            checks.duration(text)


BASE = dt.datetime(2026, 11, 23)  # a Monday
#: Accepted here and by systemd; their next elapses must agree.
SUPPORTED = [
    "minutely", "hourly", "daily", "Daily", "weekly", "monthly", "quarterly", "semiannually", "yearly", "annually",
    "*-*-* 02:30:00", "*-*-* 2:30", "02:30", "2:30:15", "Mon..Fri 02:00", "mon 2:00", "Monday *-*-* 02:00", "Sat,Sun 10:00",
    "Mon,Wed..Fri *-*-* 23:59:59", "*-*-1/10", "*-*-01 04:00", "*-1..3-1 00:00", "*-*-* *:0/15", "*-*-* 00/6:00:00",
    "1/2:00", "*:*", "2027-01-01", "2026..2030-*-* 02:00", "*-12-25", "12-25 08:00", "*-02-29", "*-02-30", "*-*-31",
    "Sun *-*-1..7 03:00", "2026-12-1", "Tue *-*-* 1..3:00", "*-*-* 08..18/2:00", "Fri *-*-13",
]
#: Outside the subset (refused here) although systemd takes them; refusing is the safe side.
OUTSIDE_SUBSET = ["*-*-* 02:30:00 UTC", "*-*-* 02:30:00.5", "26-01-01", "*-02~01", "Mon..Fri *-*-* 02:00 Europe/Berlin"]
#: Refused by systemd; must be refused here.
INVALID = ["", "daily; rm -rf /", "*/15:00", "5..1:00", "Mon, Tue 2:00", "25:00", "*-13-01", "*-*-32", "Funday",
           "2:60", "Fri..Mon", "every day", "*-*-* *:*:*:*", "1-2-3-4"]


def _systemd(expression: str, iterations: int = 5) -> list[str] | None:
    """systemd's next elapses of `expression` after BASE (UTC), [] for never, None if it refuses it."""
    done = subprocess.run(["systemd-analyze", "calendar", f"--iterations={iterations}", f"--base-time={BASE:%Y-%m-%d %H:%M:%S}",
                           expression], capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, timeout=30)
    if done.returncode != 0:
        return None
    return re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", done.stdout)


@pytest.mark.parametrize("expression", SUPPORTED)
def test_supported_expressions_elapse_when_systemd_says(expression: str) -> None:
    expected = _systemd(expression)
    assert expected is not None, "systemd refuses it"
    runs = calendar.parse(expression).runs(BASE, BASE + dt.timedelta(days=20 * 366))
    assert [f"{t:%Y-%m-%d %H:%M:%S}" for t in itertools.islice(runs, 5)] == expected


@pytest.mark.parametrize("expression", OUTSIDE_SUBSET + INVALID)
def test_expressions_outside_the_subset_are_refused(expression: str) -> None:
    if expression in INVALID:
        assert _systemd(expression) is None, "systemd accepts it: move it to OUTSIDE_SUBSET"
    else:
        assert _systemd(expression) is not None, "systemd refuses it: move it to INVALID"
    with pytest.raises(ValueError):
        calendar.parse(expression)
