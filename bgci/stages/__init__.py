"""The stages: plain functions over a Deployment that fill in a StageResult.

They know nothing of click, of CI systems or of report formats. A failed check raises CheckFailed,
an unsafe request Refused, and so on (``bgci.errors``); the caller writes the reports either way.
"""
