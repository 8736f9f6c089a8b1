"""Independent oracles for keepword's business calendar (src/calendar).

Run by tests/calendar_crosscheck.rs:  python oracle.py CASES.json RESULTS.json

1. A brute-force walker. It resolves each local day's open intervals to
   instants itself with `zoneinfo` (gap -> the transition instant, found by
   bisection; fold -> the earlier instant; 24:00 -> next local midnight),
   then walks those intervals one after the other, second-exactly, with no
   prefix sums and no year tables. Instants are integer nanoseconds.
2. pandas `CustomBusinessHour` for the cases where it is comparable (the
   Rust side marks them): one whole-hour interval per open weekday, whole
   hours to add, zones without DST at those dates. pandas rolls a count that
   ends exactly at closing to the next opening (17:00 becomes 09:00 the next
   business day); our rule keeps 17:00, so a pandas result at opening time is
   mapped back to the previous business day's closing before comparing.

Time zone data: zoneinfo is pointed at the `tzdata` package pinned in
requirements.txt (2025.2 = IANA 2025b, the release compiled into chrono-tz
0.10.4), not at the system's /usr/share/zoneinfo, so both sides use the
same rules.
"""

import functools
import json
import sys
import zoneinfo
from datetime import date, datetime, timedelta, timezone

zoneinfo.reset_tzpath(to=[])
from zoneinfo import ZoneInfo  # noqa: E402

NANOS = 1_000_000_000
EPOCH = datetime(1970, 1, 1)


@functools.lru_cache(maxsize=None)
def zone(name):
    return ZoneInfo(name)


def utc_offset(z, utc_seconds):
    dt = datetime.fromtimestamp(utc_seconds, tz=timezone.utc).astimezone(z)
    return int(dt.utcoffset().total_seconds())


def local_of(z, utc_seconds):
    """Naive local wall time of a UTC instant (whole seconds)."""
    return datetime.fromtimestamp(utc_seconds, tz=timezone.utc).astimezone(z).replace(tzinfo=None)


def resolve(z, naive):
    """Instant (Unix seconds) of a naive local wall time, and whether it was in a gap."""
    candidates = []
    for fold in (0, 1):
        u = int(naive.replace(tzinfo=z, fold=fold).timestamp())
        if local_of(z, u) == naive:
            candidates.append(u)
    if candidates:
        return min(candidates), False
    # In a gap, PEP 495 reads fold=0 with the offset before the transition
    # (an instant after it) and fold=1 with the offset after (before it).
    after = int(naive.replace(tzinfo=z, fold=0).timestamp())
    before = int(naive.replace(tzinfo=z, fold=1).timestamp())
    lo, hi = min(before, after), max(before, after)
    o_lo = utc_offset(z, lo)
    assert utc_offset(z, hi) != o_lo, (naive, lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if utc_offset(z, mid) == o_lo:
            lo = mid
        else:
            hi = mid
    return hi, True


def resolve_day_seconds(z, d, secs):
    naive = datetime(d.year, d.month, d.day) + timedelta(seconds=secs)
    return resolve(z, naive)[0]


class Cal:
    def __init__(self, spec):
        self.tz = zone(spec["tz"])
        self.always = spec["always"]
        self.week = [[tuple(iv) for iv in day] for day in spec["week"]]
        self.holidays = {date.fromisoformat(h) for h in spec["holidays"]}
        self.day_cache = {}

    def day(self, d):
        """Open intervals of local date d, nanoseconds, sorted and merged."""
        if d in self.day_cache:
            return self.day_cache[d]
        if self.always:
            spans = [(0, 86_400)]
        elif d in self.holidays:
            spans = []
        else:
            spans = self.week[d.weekday()]
        ivs = []
        for s, e in spans:
            a = resolve_day_seconds(self.tz, d, s) * NANOS
            b = resolve_day_seconds(self.tz, d, e) * NANOS
            if a < b:
                ivs.append((a, b))
        ivs.sort()
        merged = []
        for a, b in ivs:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        self.day_cache[d] = merged
        return merged

    def local_date(self, t):
        return local_of(self.tz, t // NANOS).date()

    def days_from(self, t):
        """(date, intervals) from two dates before t's local date on, in order."""
        d = self.local_date(t) - timedelta(days=2)
        last_end = None
        for _ in range(200 * 366):
            ivs = self.day(d)
            if ivs:
                # Local days must resolve to ordered, non-overlapping instants.
                assert last_end is None or ivs[0][0] >= last_end, (d, ivs, last_end)
                last_end = ivs[-1][1]
            yield d, ivs
            d += timedelta(days=1)
        raise RuntimeError("walked 200 years without finishing")

    def intervals_from(self, t):
        for _, ivs in self.days_from(t):
            yield from ivs

    def add_nanos(self, t, rest):
        if self.always:
            return t + rest
        for a, b in self.intervals_from(t):
            if b <= t:
                continue
            start = max(a, t)
            if rest == 0:
                return start
            if rest <= b - start:
                return start + rest
            rest -= b - start

    def between(self, a, b):
        if b <= a:
            return 0
        if self.always:
            return b - a
        total = 0
        for s, e in self.intervals_from(a):
            if s >= b:
                return total
            total += max(0, min(e, b) - max(s, a))

    def add(self, t, days, seconds):
        rest = seconds * NANOS
        if days == 0:
            return self.add_nanos(t, rest)
        x = self.always_days(t, days) if self.always else self.business_days(t, days)
        return x if rest == 0 else self.add_nanos(x, rest)

    def always_days(self, t, days):
        secs, sub = divmod(t, NANOS)
        later = local_of(self.tz, secs) + timedelta(days=days)
        inst, in_gap = resolve(self.tz, later)
        return inst * NANOS + (0 if in_gap else sub)

    def business_days(self, t, n):
        s = self.add_nanos(t, 0)
        open_days = ((d, ivs) for d, ivs in self.days_from(s) if ivs)
        p = None
        for d, ivs in open_days:
            if any(a <= s < b for a, b in ivs):
                p = sum(max(0, min(b, s) - a) for a, b in ivs)
                break
        assert p is not None
        k = n if p else n - 1
        if k == 0:
            target = ivs
        else:
            for i, (d, target) in enumerate(open_days, start=1):
                if i == k:
                    break
        if p == 0:
            return target[-1][1]
        for a, b in target:
            if p <= b - a:
                return a + p
            p -= b - a
        return target[-1][1]


def pandas_add(case, cal_spec):
    """Local wall time after `hours` business hours, by pandas, or None."""
    import pandas as pd
    from pandas.tseries.offsets import CustomBusinessHour

    z = zone(cal_spec["tz"])
    starts = {day[0][0] for day in cal_spec["week"] if day}
    ends = {day[0][1] for day in cal_spec["week"] if day}
    (start,), (end,) = starts, ends
    weekmask = "".join("1" if day else "0" for day in cal_spec["week"])
    cbh = CustomBusinessHour(
        n=1,
        start=f"{start // 3600:02d}:00",
        end=f"{end // 3600:02d}:00",
        weekmask=weekmask,
        holidays=cal_spec["holidays"],
    )
    t = case["t"]
    local = pd.Timestamp(local_of(z, t // NANOS)) + pd.Timedelta(t % NANOS, unit="ns")
    result = local + case["seconds"] // 3600 * cbh
    if result == result.normalize() + pd.Timedelta(start, unit="s"):
        # pandas rolled a count ending at closing to the next opening.
        # (Closing times are whole hours; pandas would keep the 999 ns.)
        result = cbh.rollback(result - pd.Timedelta(1, unit="ns")).floor("s")
    # Whole-hour, DST-free zone: the wall time maps back to one instant.
    wall = result.to_pydatetime(warn=False).replace(microsecond=0)
    inst = resolve(z, wall)[0]
    return inst * NANOS + result.microsecond * 1000 + result.nanosecond


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)
    cals = [Cal(spec) for spec in data["calendars"]]
    results = []
    for case in data["cases"]:
        cal = cals[case["cal"]]
        if case["op"] == "add":
            walker = cal.add(case["t"], case["days"], case["seconds"])
        else:
            walker = cal.between(case["a"], case["b"])
        pandas = None
        if case.get("pandas"):
            pandas = pandas_add(case, data["calendars"][case["cal"]])
        results.append({"walker": walker, "pandas": pandas})
    with open(sys.argv[2], "w") as f:
        json.dump({"results": results}, f)


if __name__ == "__main__":
    main()
