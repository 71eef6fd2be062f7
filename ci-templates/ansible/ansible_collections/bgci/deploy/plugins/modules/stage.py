#!/usr/bin/python
# Copyright: bgci contributors
# MIT License (see the LICENSE of the bgci repository)
"""Run one bgci stage on the managed host: the Ansible wrapper around the bgci CLI.

A thin wrapper, like the GitHub Action, the GitLab template and the Jenkins step: Ansible checks
the options (argument_spec), the module turns them into one argv list (never a shell string) and
environment variables, runs ``bgci --json ... STAGE`` and returns the stage's JSON result.
"""

DOCUMENTATION = r"""
---
module: stage
short_description: Run one bgci blue-green deployment stage on the managed host
version_added: "0.1.0"
description:
  - Runs one stage of bgci (blue-green, zero-downtime deployment of
    Python web apps) on the managed host and returns the stage's JSON result.
  - The options become one argument list and environment variables; no value is ever given to a
    shell.
  - C(changed) is bgci's own C(changed) field, true only when the stage changed the deployment (a
    release built, a colour started or stopped, live traffic moved, a digest verified, drift
    healed). A stage that had already reached its goal reports C(changed=false).
  - In check mode, C(switch) and C(rollback) run with C(--dry-run) and report whether they would
    change anything; C(status) runs as usual (it only reads). The other stages have no dry run, so
    they are not run at all and the task is reported as skipped.
  - A stage that does not pass fails the task with bgci's message and exit code (1 a check failed,
    2 usage or configuration error, 3 infrastructure unreachable, 4 refused as unsafe, 5 the deploy
    lock is held, 130 interrupted).
author:
  - bgci contributors
requirements:
  - bgci installed on the managed host (the C(bgci.deploy.pipeline) role can install it with pip)
options:
  stage:
    description:
      - The stage to run.
    type: str
    required: true
    choices: [build, deploy-green, verify, switch, rollback, status, retire, down, up, deploy,
              releases]
  chdir:
    description:
      - The project directory on the managed host, where C(bgci.toml) (or C(pyproject.toml)) is.
    type: path
    required: true
  executable:
    description:
      - The bgci executable on the managed host, a path or a name looked up on C(PATH).
    type: str
    default: bgci
  config:
    description:
      - Config file, relative to O(chdir) (default C(bgci.toml), else C([tool.bgci]) in
        C(pyproject.toml)).
    type: path
  reports:
    description:
      - Reports directory (JUnit XML, JSON, C(bgci.env)), relative to O(chdir) or absolute. It is
        also C(reports.dir), so a process-platform release never copies it.
    type: path
    default: bgci-reports
  image:
    description:
      - C(deploy-green) only. The image reference (docker, swarm) or release id (process) to
        deploy. Without it, the image the last C(build) recorded in the reports directory.
    type: str
  tag:
    description:
      - C(build) and C(deploy) only. The tag of the image or release (default the git SHA).
    type: str
  digest:
    description:
      - C(verify) and C(switch) only. The release this pipeline deployed (the RV(digest) that
        C(deploy-green) returned). The stage refuses when the idle colour runs another, and has
        nothing to do when that release already serves live traffic.
    type: str
  force:
    description:
      - C(switch) and C(retire) only. Switch to a release that was not verified; retire the idle
        colour before C(switch.retire_after), or the last rollback target.
    type: bool
    default: false
  allow_quarantined:
    description:
      - C(deploy-green) only. Deploy a digest that a rollback quarantined.
    type: bool
    default: false
  to:
    description:
      - C(rollback) only. Roll back to this recorded release (a version, an image or a digest;
        C(releases) lists them) instead of the previous colour.
    type: str
  lock_wait:
    description:
      - How many seconds to wait for another pipeline's deploy lock (bgci's default 60). Not for
        C(build) and C(status), which take no lock.
    type: float
  set:
    description:
      - Config overrides, C(SECTION.KEY) to value; each becomes one C(--set SECTION.KEY=VALUE)
        argument. Values are visible in the process list and the returned RV(cmd), so never put a
        secret here; use O(secrets).
    type: dict
    default: {}
  env:
    description:
      - Extra environment variables for bgci, such as C(DOCKER_HOST) or C(BGCI_ROUTER_LISTEN).
    type: dict
    default: {}
  secrets:
    description:
      - Environment variables that hold secrets (C(BGCI_NOTIFY_URL) with a token, registry
        passwords). Their values are never logged by Ansible (C(no_log)), and their names are added
        to C(BGCI_SECRETS), so bgci masks them in its output and reports too.
    type: dict
    default: {}
  args:
    description:
      - More options for the stage, one list item per argument, e.g. C([--history, "5"]) for
        C(status). No item is ever evaluated by a shell.
    type: list
    elements: str
    default: []
notes:
  - Each stage takes bgci's deploy lock on the target, so two plays (or a play and a CI pipeline)
    never deploy the same app at once.
  - The state of a deployment lives with the target, not with the host that runs bgci, so each
    stage may run on a different host as long as they reach the same target.
attributes:
  check_mode:
    support: partial
    details: C(switch) and C(rollback) run with C(--dry-run); C(status) runs; other stages are skipped.
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Build the release (tagged with the git SHA)
  bgci.deploy.stage:
    stage: build
    chdir: /srv/shop
  register: built

- name: Start it on the idle colour
  bgci.deploy.stage:
    stage: deploy-green
    chdir: /srv/shop
    image: "{{ built.image }}"
  register: green

- name: Health checks and the smoke suite against the preview address
  bgci.deploy.stage:
    stage: verify
    chdir: /srv/shop
    digest: "{{ green.digest }}"

- name: Send live traffic to it
  bgci.deploy.stage:
    stage: switch
    chdir: /srv/shop
    digest: "{{ green.digest }}"
    secrets:
      BGCI_NOTIFY_URL: "{{ vault_deploy_webhook }}"

- name: What serves live traffic now
  bgci.deploy.stage:
    stage: status
    chdir: /srv/shop
    args: [--history, "5"]
  register: now

- name: Roll back
  bgci.deploy.stage:
    stage: rollback
    chdir: /srv/shop
    set:
      switch.drain: 5
"""

RETURN = r"""
stage:
  description: The stage that ran (for C(deploy), the last one that ran).
  returned: when bgci ran
  type: str
  sample: switch
app:
  description: The app (C(app) of the configuration).
  returned: when bgci ran
  type: str
  sample: shop
status:
  description: bgci's outcome, passed, failed, error or refused.
  returned: when bgci ran
  type: str
  sample: passed
exit_code:
  description: bgci's exit code (also RV(rc)).
  returned: when bgci ran
  type: int
  sample: 0
rc:
  description: bgci's exit code.
  returned: when bgci ran
  type: int
  sample: 0
message:
  description: What bgci said about the stage (its error message when it failed).
  returned: when bgci ran
  type: str
  sample: "green is already live (v2 (sha256:94cff2253fbae)); nothing to switch; live: green"
dry_run:
  description: The stage ran with C(--dry-run) (check mode); RV(changed) then says whether it would change.
  returned: when bgci ran
  type: bool
  sample: false
live_color:
  description: The colour that answered requests through the live address as the stage ended.
  returned: when bgci ran
  type: str
  sample: green
idle_color:
  description: The other colour, where the next release goes.
  returned: when bgci ran
  type: str
  sample: blue
color:
  description: The colour the stage acted on.
  returned: when bgci ran
  type: str
  sample: green
image:
  description: The image reference (or release id) the stage built or deployed.
  returned: when bgci ran
  type: str
  sample: shop:3f2a9c1d0e4b
digest:
  description: Its digest; give it to C(verify) and C(switch) as O(digest).
  returned: when bgci ran
  type: str
  sample: sha256:94cff2253fbae77fc418167b0df3beaf2cc314bbbba6bb6c1294a52c0e19beb5
live_url:
  description: The live address.
  returned: when bgci ran
  type: str
  sample: http://127.0.0.1:8080
preview_url:
  description: The preview address of the idle colour.
  returned: when bgci ran
  type: str
  sample: http://127.0.0.1:8081
checks:
  description: Every check of the stage (health probe series, smoke tests, switch confirmation, drain).
  returned: when bgci ran
  type: list
  elements: dict
  sample:
    - name: switch confirmation
      outcome: passed
      seconds: 0.07
      message: 20/20 new requests through http://127.0.0.1:8080 reached green
      output: ""
extra:
  description: Stage specifics (C(status) for C(status), C(plan) for a dry run, C(switch_seconds)).
  returned: when bgci ran
  type: dict
  sample: {"switch_seconds": 0.1161}
stages:
  description: The whole JSON result of every stage that ran (four for C(deploy)).
  returned: when bgci ran
  type: list
  elements: dict
report:
  description: The absolute path of the stage's JUnit XML report on the managed host.
  returned: when bgci ran
  type: str
  sample: /srv/shop/bgci-reports/switch.xml
cmd:
  description: The argument list bgci was run with (secrets are passed in the environment, never here).
  returned: always
  type: list
  elements: str
  sample: [bgci, --json, --reports=/srv/shop/bgci-reports, switch, --digest=sha256:94cff22]
stderr:
  description: bgci's log (secrets masked by bgci), the last 20000 characters.
  returned: when bgci ran
  type: str
ansible_facts:
  description: The facts of the stage, for later tasks and plays.
  returned: when bgci ran
  type: complex
  contains:
    bgci:
      description: >-
        C(app), C(stage), C(live_color), C(idle_color), C(image), C(digest), C(live_url),
        C(preview_url).
      type: dict
      returned: when bgci ran
"""

import json  # noqa: E402 (Ansible's layout: the documentation first)
import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

STAGES = ["build", "deploy-green", "verify", "switch", "rollback", "status", "retire", "down",
          "up", "deploy", "releases"]
# the stage options and the stages they belong to (bgci refuses them elsewhere with a usage error;
# here Ansible says so before anything runs)
STAGE_OPTIONS = {
    "image": ("deploy-green",),
    "tag": ("build", "deploy"),
    "digest": ("verify", "switch"),
    "force": ("switch", "retire"),
    "allow_quarantined": ("deploy-green",),
    "to": ("rollback",),
    "lock_wait": ("deploy-green", "verify", "switch", "rollback", "retire", "down", "up", "deploy"),
}
DRY_RUN_STAGES = ("switch", "rollback")
READ_ONLY_STAGES = ("status", "releases")
EXIT_CODES = {
    1: "a check failed",
    2: "usage or configuration error",
    3: "infrastructure unreachable or broken; nothing was changed",
    4: "refused as unsafe",
    5: "the deploy lock is held by another pipeline",
    130: "interrupted",
}
FACTS = ("live_color", "idle_color", "color", "image", "digest", "live_url", "preview_url")
STDERR_LIMIT = 20000

ARGUMENT_SPEC = dict(
    stage=dict(type="str", required=True, choices=STAGES),
    chdir=dict(type="path", required=True),
    executable=dict(type="str", default="bgci"),
    config=dict(type="path"),
    reports=dict(type="path", default="bgci-reports"),
    image=dict(type="str"),
    tag=dict(type="str"),
    digest=dict(type="str"),
    force=dict(type="bool", default=False),
    allow_quarantined=dict(type="bool", default=False),
    to=dict(type="str"),
    lock_wait=dict(type="float"),
    set=dict(type="dict", default={}),
    env=dict(type="dict", default={}),
    secrets=dict(type="dict", default={}, no_log=True),
    args=dict(type="list", elements="str", default=[]),
)


def misplaced(params):
    """The stage options given to a stage they do not belong to."""
    stage = params["stage"]
    found = []
    for name, stages in STAGE_OPTIONS.items():
        value = params[name]
        if value not in (None, False) and stage not in stages:
            found.append(f"{name} (for {', '.join(stages)})")
    return found


def text(value):
    """A config or environment value as bgci reads it (YAML booleans as TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def command(params, executable, reports, dry_run):
    """The argv of the bgci run: global options, the stage, its options, the extra args. Values
    are attached to their option (``--image=VALUE``), so none can pass for an option."""
    argv = [executable, "--json", f"--reports={reports}"]
    if params["config"]:
        argv.append(f"--config={params['config']}")
    for key in sorted(params["set"]):
        argv.append(f"--set={key}={text(params['set'][key])}")
    argv.append(params["stage"])
    for name in ("image", "tag", "digest", "to", "lock_wait"):
        if params[name] is not None:
            argv.append(f"--{name.replace('_', '-')}={params[name]}")
    if params["force"]:
        argv.append("--force")
    if params["allow_quarantined"]:
        argv.append("--allow-quarantined")
    if dry_run:
        argv.append("--dry-run")
    return argv + list(params["args"])


def environment(params, reports):
    """What bgci's environment gets on top of the module's: the env and secrets options, the
    reports dir as reports.dir, and the secrets' names in BGCI_SECRETS."""
    update = {str(k): text(v) for k, v in params["env"].items()}
    update.update((str(k), text(v)) for k, v in params["secrets"].items())
    update["BGCI_REPORTS_DIR"] = reports
    if params["secrets"]:
        names = [n for n in os.environ.get("BGCI_SECRETS", "").split(",") if n.strip()]
        names += sorted(str(k) for k in params["secrets"])
        update["BGCI_SECRETS"] = ",".join(names)
    return update


def results(stdout):
    """The JSON documents bgci printed (one per stage; ``deploy`` prints four)."""
    decoder = json.JSONDecoder()
    found = []
    at = 0
    while True:
        while at < len(stdout) and stdout[at].isspace():
            at += 1
        if at >= len(stdout):
            return found
        try:
            doc, at = decoder.raw_decode(stdout, at)
        except ValueError:
            return found
        if isinstance(doc, dict) and "stage" in doc:
            found.append(doc)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    stage = params["stage"]
    wrong = misplaced(params)
    if wrong:
        module.fail_json(msg=f"options that do not apply to stage {stage}: {'; '.join(wrong)}; "
                             "nothing was run", cmd=[])
    chdir = params["chdir"]
    if not os.path.isdir(chdir):
        module.fail_json(msg=f"chdir {chdir} is not a directory on {os.uname()[1]}; nothing was run",
                         cmd=[])
    reports = os.path.join(chdir, params["reports"])
    dry_run = module.check_mode and stage in DRY_RUN_STAGES
    if module.check_mode and not dry_run and stage not in READ_ONLY_STAGES:
        module.exit_json(changed=False, skipped=True, cmd=[],
                         msg=f"check mode: bgci {stage} has no --dry-run, so it was not run (it may "
                             "change the deployment when run for real)")
    executable = params["executable"]
    if os.sep not in executable:
        executable = module.get_bin_path(executable, required=True)
    argv = command(params, executable, reports, dry_run)
    rc, stdout, stderr = module.run_command(argv, cwd=chdir,
                                            environ_update=environment(params, reports))
    docs = results(stdout)
    if not docs:
        said = stderr.strip()[-2000:] or stdout.strip()[-2000:]
        module.fail_json(msg=f"bgci {stage} exited {rc} without a JSON result: {said}",
                         rc=rc, cmd=argv, stderr=stderr[-STDERR_LIMIT:])
    last = docs[-1]
    ret = dict(
        rc=rc, cmd=argv, stderr=stderr[-STDERR_LIMIT:], stages=docs,
        stage=last.get("stage"), app=last.get("app"), status=last.get("status"),
        exit_code=last.get("exit_code", rc), message=last.get("message", ""),
        dry_run=bool(last.get("dry_run", dry_run)), checks=last.get("checks", []),
        extra=last.get("extra", {}),
        report=os.path.join(reports, f"{last.get('stage', stage)}.xml"),
    )
    for name in FACTS:
        ret[name] = last.get(name)
    if any("changed" not in doc for doc in docs):
        module.warn("this bgci does not report whether a stage changed anything (a version "
                    "before the `changed` field): every stage that ran counts as a change")
        changed = stage not in READ_ONLY_STAGES
    else:
        changed = any(doc["changed"] for doc in docs)
    facts = {name: ret[name] for name in FACTS if name != "color"}
    facts.update(app=ret["app"], stage=ret["stage"])
    ret["ansible_facts"] = dict(bgci=facts)
    if rc != 0:
        meaning = EXIT_CODES.get(rc, "unexpected exit code")
        module.fail_json(msg=f"bgci {ret['stage']} {ret['status']} (exit {rc}: {meaning}): "
                             f"{ret['message']}", changed=changed, **ret)
    module.exit_json(changed=changed, **ret)


if __name__ == "__main__":
    main()
