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
