"""Run folders: the files a run keeps (names and parsing, no torch) and the test-look ledger."""
