"""What a sweep makes of many runs: the results tables, the run-dir reader, statistics, sweep glue, publishing."""
