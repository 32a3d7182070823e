"After the run: the notebooks that needed the most memory (peak resident set of each notebook's process)."


def pytest_terminal_summary(terminalreporter):
    peaks = []
    for reports in terminalreporter.stats.values():
        for r in reports:
            props = dict(getattr(r, "user_properties", ()))
            if getattr(r, "when", None) == "call" and "peak_rss_mib" in props: peaks.append((props["peak_rss_mib"], r.nodeid))
    if peaks:
        terminalreporter.section("peak memory per notebook")
        for mib, nodeid in sorted(peaks, reverse=True)[:5]: terminalreporter.write_line(f"{mib / 1024:6.2f} GiB  {nodeid}")
