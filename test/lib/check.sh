# Sourced by shell tests: assertions and the closing count line.
passed=0
failed=0

# Records one assertion: check NAME EXPECTED ACTUAL.
check() {
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "ok - $1"
  else failed=$((failed + 1)); echo "not ok - $1 (expected '$2', got '$3')"; fi
}

# Prints "NAME: N passed, M failed" and fails when an assertion did.
finish_checks() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

# Adds the closing line "NAME: N passed, M failed" found in LOG to passed and
# failed; a suite that printed none counts as one failure.
add_suite_result() {
  local line p f
  line=$(grep -E "^$1: [0-9]+ passed, [0-9]+ failed" "$2" | tail -n 1)
  if [ -z "$line" ]; then failed=$((failed + 1)); return; fi
  p=$(echo "$line" | grep -oP '[0-9]+(?= passed)')
  f=$(echo "$line" | grep -oP '[0-9]+(?= failed)')
  passed=$((passed + p)); failed=$((failed + f))
}
