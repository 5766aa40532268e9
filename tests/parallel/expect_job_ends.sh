#!/bin/bash
# usage: expect_job_ends.sh SECONDS PATTERN COMMAND...
# Passes when COMMAND exits non-zero within SECONDS and its output matches PATTERN (extended regex).
limit=$1; pattern=$2; shift 2
out=$(mktemp)
start=$(date +%s)
timeout --kill-after=5 "$limit" "$@" >"$out" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$out"
# (The launcher itself may exit 137 when a rank died by SIGKILL, so a hang is told by the time taken.)
if [ $rc -eq 124 ] || [ $elapsed -ge "$limit" ]; then echo "FAIL: the job hung (stopped after ${elapsed}s)"; rm -f "$out"; exit 1; fi
if [ $rc -eq 0 ]; then echo "FAIL: the job exited 0 although a rank failed"; rm -f "$out"; exit 1; fi
if ! grep -Eq "$pattern" "$out"; then echo "FAIL: no message matching '$pattern'"; rm -f "$out"; exit 1; fi
echo "PASS: the job ended with status $rc after ${elapsed}s with a message"
rm -f "$out"
