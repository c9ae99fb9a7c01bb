#!/bin/sh
# Runs the libFuzzer targets that `make fuzz-build` put in DIR, one after
# the other (no -jobs: CI has two cores), each for FUZZ_TIME seconds
# (default 60) on DIR/corpus-TARGET: a copy of test/fuzz/corpus/TARGET,
# kept between runs so that what a run found seeds the next (the repo's
# corpus is never written). Prints one line per target with libFuzzer's
# final counts; the full output is in DIR/TARGET.log. Exits 1 if any
# target crashed, leaked, timed out or ran out of memory; the input that
# did it is in DIR/artifacts/.
#
# FUZZ_RUNS=N stops each target after N executions instead (FUZZ_TIME
# still bounds it). FUZZ_KEEP=1 (make fuzz-long) merges what a run found
# back into test/fuzz/corpus/TARGET, keeping only inputs that add
# coverage (libFuzzer's -merge=1), and copies an input that crashed there
# too as crash-NAME, so that it stays a regression input for every later
# run once fixed.
#
#   scripts/fuzz.sh DIR TARGET...
set -u

[ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh DIR TARGET..." >&2; exit 2; }
dir=$1
shift
time=${FUZZ_TIME:-60}
failed=

mkdir -p "$dir/artifacts"
for t in "$@"; do
	corpus=$dir/corpus-$t
	log=$dir/$t.log
	mkdir -p "$corpus"
	if [ -d "test/fuzz/corpus/$t" ]; then
		cp test/fuzz/corpus/"$t"/* "$corpus"/ || exit 2
	fi
	"$dir/$t" -max_total_time="$time" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} \
	    -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
	    -artifact_prefix="$dir/artifacts/$t-" "$corpus" >"$log" 2>&1
	rc=$?
	if [ "${FUZZ_KEEP:-0}" = 1 ]; then
		keep=test/fuzz/corpus/$t
		mkdir -p "$keep"
		"$dir/$t" -merge=1 -rss_limit_mb=2048 -timeout=10 "$keep" "$corpus" \
		    >"$dir/$t.merge.log" 2>&1 || echo "$t: merge failed (see $dir/$t.merge.log)" >&2
		for a in "$dir/artifacts/$t-"*; do
			[ -f "$a" ] && cp "$a" "$keep/crash-${a##*/}"
		done
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	# the last status line: "#N  DONE  cov: C ft: F corp: U/SIZE ..."
	cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
	ft=$(sed -n 's/.* ft: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
	corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' "$log" | tail -n 1)
	status=ok
	if [ "$rc" -ne 0 ]; then
		status="FAILED (exit $rc)"
		failed="$failed $t"
	fi
	printf '%-16s %10s execs (%s/s)  cov %s  ft %s  corpus %s  %s\n' "$t" "${execs:-?}" \
	    "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$status"
	if [ "$rc" -ne 0 ]; then
		grep -E 'ERROR|SUMMARY|invariant failed|runtime error|ALARM|Test unit written' \
		    "$log" | head -n 20
		echo "  (full output: $log)"
	fi
done

if [ -n "$failed" ]; then
	echo "fuzz: failed:$failed" >&2
	exit 1
fi
