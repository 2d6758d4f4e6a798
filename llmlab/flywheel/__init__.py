"""The flywheel: the whole loop (documents -> answers -> feedback -> alignment -> evaluation -> serving) run as
one sequence of `llmlab` commands into one run folder with a report (docs/flywheel.md)."""
