"""Test kit shipped with the package: fakes, contract suites, Hypothesis strategies."""
