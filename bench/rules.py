#!/usr/bin/env python3
"""Writes a rule set of N rules (and a test for each tenth) for measuring load time.

Usage: bench/rules.py N > big.yaml; then `time belroute check --rules DIR`.
"""
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
out = sys.stdout
out.write("description: generated, %d rules\ntimeout: 2s\ndefault: receptie\n" % n)
out.write("timezone: Europe/Amsterdam\nrules:\n")
for i in range(n):
    out.write("  - name: rule %d\n" % i)
    out.write("    when: 'call.caller_number == \"316%08d\" && caller.valid'\n" % i)
    out.write("    route: route_%d\n" % (i % 97))
out.write("tests:\n")
for i in range(0, n, 10):
    out.write("  - name: test %d\n" % i)
    out.write("    call: { caller_number: \"316%08d\" }\n" % i)
    out.write("    expect: { route: route_%d }\n" % (i % 97))
