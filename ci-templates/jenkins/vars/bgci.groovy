// bgci as a Jenkins shared-library step: one call runs one bgci stage. See bgci.txt for the help.
//
//   library identifier: 'bgci@1.2.3', retriever: modernSCM([$class: 'GitSCMSource',
//       remote: 'https://<host>/<you>/bgci.git'], libraryPath: 'ci-templates/jenkins/')
//   Map common = [source: 'bgci==1.2.3']  // the same version; the managed Traefik comes with it
//   bgci.build(common + [args: '--tag v2']); bgci.deployGreen(common); bgci.verify(common)
//
// A thin wrapper: it checks the options, then runs one fixed, single-quoted shell script that
// reads every value from the environment (withEnv), so no option is ever put into a shell
// string. The JUnit report is published in a `finally`, whatever the outcome.
import groovy.transform.Field

@Field static final List<String> STAGES = [
    'build', 'deploy-green', 'verify', 'switch', 'rollback', 'status', 'retire', 'down', 'up',
    'deploy', 'releases']
// Stages that change the deployment: the optional `lock` is taken around them.
@Field static final List<String> DEPLOYING = [
    'deploy-green', 'verify', 'switch', 'rollback', 'retire', 'down', 'up', 'deploy']
// The JUnit files each stage writes (deploy runs four stages in one process).
@Field static final Map<String, List<String>> REPORTS = [
    deploy: ['build', 'deploy-green', 'verify', 'switch']]
@Field static final Map<String, Object> DEFAULTS = [
    stage: null, args: [], set: [:], config: '', reports: 'bgci-reports', dir: '',
    env: [:], credentials: [], lock: false, junit: true, archive: true,
    bgci: 'bgci', source: '', python: 'python3', venv: '']
@Field static final Map<Integer, String> EXIT_CODES = [
    1  : 'a check failed (health, smoke, switch confirmation, bake, a hook)',
    2  : 'usage or configuration error',
    3  : 'infrastructure unreachable or broken; nothing was changed',
    4  : 'refused as unsafe',
    5  : 'the deploy lock is held by another pipeline',
    130: 'interrupted']
@Field static final String WORD = /[A-Za-z0-9_.\/:=,@+%-]+/
@Field static final String KEY = /[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+/

// Reads every value from the environment; values never become shell code. The argument list
// is one value per line, split with globbing off.
@Field static final String SCRIPT = '''#!/bin/sh
set -eu
# the reports dir, absolute, is reports.dir too: a process-platform release never copies it
case $BGCI_STEP_REPORTS in
  /*) BGCI_REPORTS_DIR=$BGCI_STEP_REPORTS ;;
  *) BGCI_REPORTS_DIR=$PWD/$BGCI_STEP_REPORTS ;;
esac
export BGCI_REPORTS_DIR
if [ -n "$BGCI_STEP_SOURCE" ]; then
  venv=${BGCI_STEP_VENV:-${WORKSPACE:-$PWD}/.bgci-venv}
  if [ -x "$venv/bin/bgci" ] && [ "$(cat "$venv/.bgci-requirement" 2>/dev/null || true)" = "$BGCI_STEP_SOURCE" ]; then
    echo "bgci: reusing $venv"
  else
    rm -rf "$venv"
    "$BGCI_STEP_PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -- "$BGCI_STEP_SOURCE"
    printf '%s' "$BGCI_STEP_SOURCE" >"$venv/.bgci-requirement"
    echo "bgci: installed into $venv"
  fi
  BGCI_STEP_BIN=$venv/bin/bgci
fi
set -f
IFS='
'
exec "$BGCI_STEP_BIN" $BGCI_STEP_ARGV
'''

/** `bgci.build(...)`: build the image (or release), tagged with the git SHA or `--tag`. */
Map build(Map opts = [:]) { run(opts + [stage: 'build']) }

/** `bgci.deployGreen(...)`: start the new version on the idle colour, wait until healthy. */
Map deployGreen(Map opts = [:]) { run(opts + [stage: 'deploy-green']) }

/** `bgci.verify(...)`: health checks and the smoke suite against the preview address. */
Map verify(Map opts = [:]) { run(opts + [stage: 'verify']) }

/** `bgci.switchTraffic(...)`: send live traffic to the verified idle colour (`bgci switch`). */
Map switchTraffic(Map opts = [:]) { run(opts + [stage: 'switch']) }

/** `bgci.rollback(...)`: live traffic back to the previous colour (args: '--to 1.4.2': to any
 *  recorded release). */
Map rollback(Map opts = [:]) { run(opts + [stage: 'rollback']) }

/** `bgci.status(...)`: what runs where, the lock and the history. */
Map status(Map opts = [:]) { run(opts + [stage: 'status']) }

/** `bgci.retire(...)`: stop the idle colour once it has been idle long enough. */
Map retire(Map opts = [:]) { run(opts + [stage: 'retire']) }

/** `bgci.down(...)`: stop both colours and the managed router (the app goes offline). */
Map down(Map opts = [:]) { run(opts + [stage: 'down']) }

/** `bgci.up(...)`: the inverse of down: the live colour and the router as recorded. */
Map up(Map opts = [:]) { run(opts + [stage: 'up']) }

/** `bgci.deploy(...)`: build, deploy-green, verify and switch in one call. */
Map deploy(Map opts = [:]) { run(opts + [stage: 'deploy']) }

/** `bgci.releases(...)`: every release the app ran (releases.json is archived). */
Map releases(Map opts = [:]) { run(opts + [stage: 'releases']) }

/** `bgci(stage: 'verify', ...)` is `bgci.run(stage: 'verify', ...)`. */
Map call(Map opts = [:]) { run(opts) }

/**
 * Run one bgci stage. Options (see bgci.txt): stage (required), args, set, config, reports,
 * dir, env, credentials, lock, junit, archive, bgci, source, python, venv.
 * Returns the facts of bgci.env ([BGCI_LIVE_COLOR: 'green', BGCI_IMAGE: ..., ...]); a stage
 * that does not pass fails the step with an error naming its exit code.
 */
Map run(Map opts) {
    Map o = options(opts)
    List<String> environment = [
        "BGCI_STEP_BIN=${o.bgci}", "BGCI_STEP_SOURCE=${o.source}",
        "BGCI_STEP_PYTHON=${o.python}", "BGCI_STEP_VENV=${o.venv}", "BGCI_STEP_REPORTS=${o.reports}",
        "BGCI_STEP_ARGV=${argv(o).join('\n')}"]
    o.env.each { name, value -> environment << "${name}=${value}" }
    Map result = [:]
    Closure stage = {
        withCredentialsIfAny(o.credentials as List) {
            withEnv(environment) {
                result = execute(o)
            }
        }
    }
    if (o.lock && DEPLOYING.contains(o.stage)) {
        lock(resource: o.lock instanceof String ? o.lock : 'bgci') { inDir(o.dir as String, stage) }
    } else {
        inDir(o.dir as String, stage)
    }
    return result
}

private Map execute(Map o) {
    int code = -1
    try {
        code = sh(script: SCRIPT, returnStatus: true, label: "bgci ${o.stage}") as int
    } finally {
        if (o.junit) {
            junit(testResults: reportFiles(o).join(', '), allowEmptyResults: true)
        }
        if (o.archive) {
            archiveArtifacts(artifacts: "${o.reports}/**", allowEmptyArchive: true)
        }
    }
    if (code != 0) {
        String meaning = EXIT_CODES[code] ?: 'unexpected exit code'
        error("bgci ${o.stage} failed with exit code ${code} (${meaning}): " +
              "the JUnit report ${reportFiles(o)[-1]} says why")
    }
    return outputs("${o.reports}/bgci.env")
}

private void withCredentialsIfAny(List bindings, Closure body) {
    if (bindings) {
        withCredentials(bindings) { body() }
    } else {
        body()
    }
}

private void inDir(String path, Closure body) {
    if (path) {
        dir(path) { body() }
    } else {
        body()
    }
}

/** The options with defaults, checked: anything unexpected stops here, before anything runs. */
private Map options(Map opts) {
    List<String> unknown = opts.keySet().collect { it as String }.findAll { !DEFAULTS.containsKey(it) }
    if (unknown) {
        error("bgci: unknown option(s) ${unknown.join(', ')}; expected: ${DEFAULTS.keySet().join(', ')}")
    }
    Map o = DEFAULTS + opts
    String stage = o.stage == null ? '' : o.stage as String
    if (!STAGES.contains(stage)) {
        error("bgci: unknown stage '${printable(stage)}'; expected one of: ${STAGES.join(', ')}")
    }
    o.stage = stage
    o.args = words(o.args)
    for (String word in o.args) {
        if (!(word ==~ WORD)) {
            error("bgci: args: '${printable(word)}' is not allowed: words of letters, digits and " +
                  '_ . / : = , @ + % - only, no shell syntax (put config values in `set`)')
        }
    }
    if (!(o.set instanceof Map)) {
        error("bgci: set: expected a map of config keys to values, e.g. ['health.interval': '0.2']")
    }
    o.set.each { key, value ->
        if (!((key as String) ==~ KEY)) {
            error("bgci: set: '${printable(key as String)}' is not a config key such as health.interval")
        }
        oneLine("set ${key}", value as String)
    }
    if (!(o.env instanceof Map)) {
        error("bgci: env: expected a map of variable names to values")
    }
    o.env.each { name, value ->
        if (!((name as String) ==~ /[A-Za-z_][A-Za-z0-9_]*/)) {
            error("bgci: env: '${printable(name as String)}' is not a variable name")
        }
        oneLine("env ${name}", value as String)
    }
    ['config', 'reports', 'dir', 'bgci', 'source', 'python', 'venv'].each { name ->
        o[name] = o[name] == null ? '' : o[name] as String
        oneLine(name, o[name] as String)
    }
    if (!o.reports || !o.bgci || !o.python) {
        error('bgci: reports, bgci and python must not be empty')
    }
    if ((o.source as String).startsWith('-')) {
        error("bgci: source: '${printable(o.source as String)}' is not a pip requirement (bgci==X.Y, a VCS URL or a path)")
    }
    if (!(o.python ==~ /[A-Za-z0-9_.\/+-]+/)) {
        error("bgci: python: '${printable(o.python as String)}' is not an interpreter name or path")
    }
    if (!(o.credentials instanceof List)) {
        error('bgci: credentials: expected a list of bindings such as string(credentialsId: ..., variable: ...)')
    }
    return o
}

/** args as a list of words: a list as given, a string split on blanks. */
private List<String> words(Object args) {
    if (args == null) {
        return []
    }
    if (args instanceof List) {
        return args.collect { it as String }
    }
    String text = (args as String).trim()
    return text ? (text.split(/\s+/) as List<String>) : []
}

private void oneLine(String what, String value) {
    if (value != null && (value.contains('\n') || value.contains('\r') || value.contains('\u0000'))) {
        error("bgci: ${what}: a value must be on one line")
    }
}

private List<String> argv(Map o) {
    List<String> argv = ['--reports', o.reports as String]
    if (o.config) {
        argv += ['--config', o.config as String]
    }
    o.set.each { key, value -> argv += ['--set', "${key}=${value}" as String] }
    argv << (o.stage as String)
    argv.addAll(o.args as List<String>)
    return argv
}

private List<String> reportFiles(Map o) {
    List<String> stages = REPORTS[o.stage as String] ?: [o.stage as String]
    return stages.collect { "${o.reports}/${it}.xml" as String }
}

/** bgci.env as a map; empty when the stage did not get to write it. */
private Map outputs(String path) {
    Map values = [:]
    if (fileExists(path)) {
        for (String line in readFile(path).split('\n')) {
            int at = line.indexOf('=')
            if (at > 0) {
                values[line.substring(0, at)] = line.substring(at + 1)
            }
        }
    }
    return values
}

/** A value fit for a message: control characters shown as '?'. */
private String printable(String value) {
    return value == null ? '' : value.replaceAll(/\p{Cntrl}/, '?')
}
