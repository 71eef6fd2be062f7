// A stand-in for a Jenkins pipeline that loads the shared-library step vars/bgci.groovy the way
// Jenkins does (a script object named after the file, whose unknown method calls are pipeline
// steps) and runs a scenario against it.
//
//   groovy jenkins_harness.groovy LIBRARY_DIR SCENARIO.groovy RECORD.json WORKSPACE [CREDENTIALS.json]
//
// The steps are stubs that behave like Jenkins': `sh` really runs its script (a file, run by its
// #! interpreter, else `sh -xe`) with the environment of the enclosing withEnv/withCredentials
// blocks in the current `dir`; `error` throws. Every step call is recorded, in order, in
// RECORD.json together with the scenario's return value or the error that ended it.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper

class StepError extends RuntimeException {
    StepError(String message) { super(message) }
}

String libraryDir = args[0]
File scenario = new File(args[1])
File record = new File(args[2])
File workspace = new File(args[3])
Map credentials = args.length > 4 ? new JsonSlurper().parse(new File(args[4])) as Map : [:]

List calls = []
List<Map> envLayers = []
List<File> dirs = [workspace]
Map jobEnv = [WORKSPACE: workspace.path, JOB_NAME: 'bgci-itest', BUILD_NUMBER: '7',
              BUILD_URL: 'http://jenkins.invalid/job/bgci-itest/7/',
              JENKINS_URL: 'http://jenkins.invalid/']

Binding binding = new Binding()
Closure currentEnv = {
    Map merged = new LinkedHashMap(System.getenv())
    merged.putAll(jobEnv)
    envLayers.each { merged.putAll(it) }
    merged
}
Closure here = { dirs[-1] }

binding.setVariable('env', jobEnv)
binding.setVariable('echo', { String text -> calls << [step: 'echo', text: text]; println text })
binding.setVariable('error', { String message ->
    calls << [step: 'error', message: message]
    throw new StepError(message)
})
binding.setVariable('sh', { Map spec ->
    String script = spec.script as String
    // the script file lives beside the record, in the test's own directory
    File file = File.createTempFile('sh-', '.sh', record.absoluteFile.parentFile)
    String output
    int code
    try {
        file.text = script
        file.setExecutable(true)
        List<String> command = script.startsWith('#!') ? [file.path] : ['/bin/sh', '-xe', file.path]
        ProcessBuilder builder = new ProcessBuilder(command).directory(here()).redirectErrorStream(true)
        builder.environment().clear()
        currentEnv().each { k, v -> builder.environment().put(k as String, v as String) }
        Process process = builder.start()
        output = process.inputStream.getText('UTF-8')
        code = process.waitFor()
    } finally {
        file.delete()
    }
    print output
    Map layerEnv = [:]
    envLayers.each { layerEnv.putAll(it) }
    calls << [step: 'sh', script: script, label: spec.label, returnStatus: spec.returnStatus,
              dir: here().path, env: layerEnv, exitCode: code, output: output]
    if (spec.returnStatus) {
        return code
    }
    if (code != 0) {
        throw new StepError("script returned exit code ${code}")
    }
    return null
})
binding.setVariable('withEnv', { List entries, Closure body ->
    Map layer = [:]
    entries.each { String entry ->
        int at = entry.indexOf('=')
        layer[entry.substring(0, at)] = entry.substring(at + 1)
    }
    calls << [step: 'withEnv', names: layer.keySet().sort()]
    envLayers << layer
    try {
        return body()
    } finally {
        envLayers.remove(envLayers.size() - 1)
    }
})
binding.setVariable('string', { Map spec -> [kind: 'string'] + spec })
binding.setVariable('withCredentials', { List bindings, Closure body ->
    Map layer = [:]
    bindings.each { Map b -> layer[b.variable] = credentials[b.credentialsId] as String }
    calls << [step: 'withCredentials', ids: bindings.collect { it.credentialsId }]
    envLayers << layer
    try {
        return body()
    } finally {
        envLayers.remove(envLayers.size() - 1)
    }
})
binding.setVariable('lock', { Map spec, Closure body ->
    calls << [step: 'lock', resource: spec.resource]
    try {
        return body()
    } finally {
        calls << [step: 'unlock', resource: spec.resource]
    }
})
binding.setVariable('dir', { String path, Closure body ->
    File target = new File(path).isAbsolute() ? new File(path) : new File(here(), path)
    calls << [step: 'dir', path: path]
    target.mkdirs()  // as Jenkins does
    dirs << target
    try {
        return body()
    } finally {
        dirs.remove(dirs.size() - 1)
    }
})
binding.setVariable('junit', { Map spec ->
    List patterns = (spec.testResults as String).split(',').collect { it.trim() }
    calls << [step: 'junit', testResults: spec.testResults, allowEmptyResults: spec.allowEmptyResults,
              dir: here().path, found: patterns.findAll { new File(here(), it).isFile() }]
})
binding.setVariable('archiveArtifacts', { Map spec ->
    calls << [step: 'archiveArtifacts', artifacts: spec.artifacts, dir: here().path]
})
binding.setVariable('fileExists', { String path -> new File(here(), path).exists() })
binding.setVariable('readFile', { String path -> new File(here(), path).getText('UTF-8') })

GroovyShell shell = new GroovyShell(binding)
Script bgci = shell.parse(new File(libraryDir, 'vars/bgci.groovy'))
binding.setVariable('bgci', bgci)
binding.setVariable('WORKSPACE', workspace.path)

Map outcome = [:]
try {
    outcome.result = shell.evaluate(scenario)
} catch (StepError e) {
    outcome.error = e.message
} finally {
    outcome.calls = calls
    record.text = JsonOutput.prettyPrint(JsonOutput.toJson(outcome))
}
