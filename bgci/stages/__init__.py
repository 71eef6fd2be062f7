"""The stages: plain functions over a Deployment that fill in a StageResult.

They know nothing of click, of CI systems or of report formats. A failed check raises CheckFailed,
an unsafe request Refused, and so on (``bgci.errors``); the caller writes the reports either way.

This module holds only names (no imports): the one list of the stages that the CLI, the
configuration (``hooks.on_failure.stages``) and the three CI wrappers are checked against.
"""

# Every command that runs a stage and leaves <stage>.xml and <stage>.json (``deploy`` leaves those
# of the four stages it runs; ``lock status`` and ``lock release`` leave lock.*, ``router reboot``
# router.*, ``quarantine list`` and ``quarantine clear`` quarantine.*). ``logs``, ``exec`` and
# ``config`` print and leave no report.
STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire", "down",
          "up", "deploy", "router", "lock", "releases", "quarantine", "destroy")
# The stages that change something, after which hooks.on_failure may run (status and lock only
# read, so never "fail"; deploy fails as one of the stages it runs).
FAILURE_STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "retire", "down", "up",
                  "router")
# What a CI wrapper runs as its ``stage`` (action.yml, ci-templates/gitlab, ci-templates/jenkins).
WRAPPER_STAGES = ("build", "deploy-green", "verify", "switch", "rollback", "status", "retire",
                  "down", "up", "deploy", "releases")
# The operator's commands beside the stages: they run none and leave no reports (``logs``,
# ``exec`` and ``config`` print; ``init`` writes a first config).
TOOLS = ("init", "logs", "exec", "config")
