// Offline check of a declarative Jenkinsfile, for tests/tests/ci_templates.rs.
//
// There is no offline Jenkins validator (the real one is the Jenkins
// controller's pipeline-model-converter). This parses the file with the Groovy
// compiler (syntax errors fail) and walks the `pipeline { }` block against the
// declarative grammar's sections and directives: unknown or misplaced sections,
// stages without steps, `script` outside `steps` and a missing `agent` fail.
// It does not know plugin steps (sh, withCredentials, ...), their arguments,
// the script-security sandbox, or anything that happens at run time.
//
// Usage: groovy check_jenkinsfile.groovy FILE; prints one problem a line and
// exits 1 when there are any.
import org.codehaus.groovy.ast.expr.*
import org.codehaus.groovy.ast.stmt.*
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.CompilationFailedException

def file = new File(args[0])
def problems = []

def unit = new CompilationUnit()
unit.addSource(file)
try {
    unit.compile(Phases.CONVERSION)
} catch (CompilationFailedException e) {
    System.err.println("syntax: " + e.message)
    System.exit(1)
}
def module = unit.AST.modules[0]

// Method calls `name { ... }` or `name(args)` that are statements of a block.
def calls = { Statement block ->
    def out = []
    def stmts = block instanceof BlockStatement ? block.statements : [block]
    for (s in stmts) {
        if (s instanceof ExpressionStatement && s.expression instanceof MethodCallExpression) {
            out << s.expression
        } else {
            out << s
        }
    }
    out
}
def closureOf = { MethodCallExpression call ->
    def args = call.arguments instanceof ArgumentListExpression ? call.arguments.expressions : []
    def c = args.find { it instanceof ClosureExpression }
    c ? c.code : null
}
def where = { node -> "line ${node.lineNumber}" }

def pipelineSections = ['agent', 'environment', 'options', 'parameters', 'post', 'stages', 'tools',
                        'triggers', 'libraries'] as Set
def stageSections = ['agent', 'environment', 'input', 'options', 'post', 'stages', 'steps', 'parallel',
                     'matrix', 'tools', 'when', 'failFast'] as Set
def postConditions = ['always', 'changed', 'fixed', 'regression', 'aborted', 'failure', 'success',
                      'unstable', 'unsuccessful', 'cleanup', 'notBuilt'] as Set
def whenConditions = ['branch', 'buildingTag', 'changelog', 'changeset', 'changeRequest', 'environment',
                      'equals', 'expression', 'tag', 'not', 'allOf', 'anyOf', 'triggeredBy',
                      'beforeAgent', 'beforeInput', 'beforeOptions'] as Set
def agentKinds = ['label', 'node', 'docker', 'dockerfile', 'kubernetes', 'any', 'none'] as Set

def checkSteps  // Steps: any step calls; `script` is allowed only here.
def checkStage
def checkStages = { Statement block, String path ->
    def n = 0
    for (c in calls(block)) {
        if (!(c instanceof MethodCallExpression) || c.methodAsString != 'stage') {
            problems << "${where(c)}: only stage('...') { } may be in ${path}"
            continue
        }
        n++
        checkStage(c, path)
    }
    if (n == 0) problems << "${where(block)}: ${path} has no stage"
}
def checkPost = { Statement block, String path ->
    for (c in calls(block)) {
        if (!(c instanceof MethodCallExpression) || !(c.methodAsString in postConditions)) {
            problems << "${where(c)}: unknown post condition in ${path}: ${c.text}"
        } else if (closureOf(c) == null) {
            problems << "${where(c)}: post ${c.methodAsString} needs a block"
        } else {
            checkSteps(closureOf(c), "${path} > ${c.methodAsString}")
        }
    }
}
def checkAgent = { MethodCallExpression call ->
    def args = call.arguments.expressions
    if (args.size() == 1 && args[0] instanceof VariableExpression && args[0].name in ['any', 'none']) return
    def body = closureOf(call)
    if (body == null) {
        problems << "${where(call)}: agent needs `any`, `none` or a block"
        return
    }
    for (c in calls(body)) {
        if (!(c instanceof MethodCallExpression) || !(c.methodAsString in agentKinds)) {
            problems << "${where(c)}: unknown agent kind ${c.text}"
        }
    }
}
checkSteps = { Statement block, String path ->
    for (c in calls(block)) {
        if (c instanceof MethodCallExpression && c.methodAsString in ['stage', 'stages', 'steps', 'pipeline']) {
            problems << "${where(c)}: ${c.methodAsString} is not a step (in ${path})"
        } else if (!(c instanceof MethodCallExpression)) {
            problems << "${where(c)}: only steps may be in ${path}, not Groovy statements (wrap them in script { })"
        }
    }
}
checkStage = { MethodCallExpression call, String parent ->
    def name = call.arguments.expressions.find { it instanceof ConstantExpression }?.value
    def body = closureOf(call)
    if (name == null || body == null) {
        problems << "${where(call)}: a stage needs a name and a block"
        return
    }
    def path = "stage '${name}'"
    def kinds = []
    for (c in calls(body)) {
        if (!(c instanceof MethodCallExpression) || !(c.methodAsString in stageSections)) {
            problems << "${where(c)}: unknown section in ${path}: ${c instanceof MethodCallExpression ? c.methodAsString : c.text}"
            continue
        }
        def section = c.methodAsString
        def inner = closureOf(c)
        switch (section) {
            case 'steps': kinds << section; checkSteps(inner, "${path} > steps"); break
            case 'stages': kinds << section; checkStages(inner, "${path} > stages"); break
            case 'parallel': kinds << section; checkStages(inner, "${path} > parallel"); break
            case 'matrix': kinds << section; break
            case 'post': checkPost(inner, path); break
            case 'agent': checkAgent(c); break
            case 'when':
                for (w in calls(inner)) {
                    if (!(w instanceof MethodCallExpression) || !(w.methodAsString in whenConditions)) {
                        problems << "${where(w)}: unknown when condition in ${path}: ${w.text}"
                    }
                }
                break
        }
    }
    if (kinds.size() != 1) {
        problems << "${where(call)}: ${path} needs exactly one of steps, stages, parallel or matrix (has ${kinds})"
    }
}

def pipelines = calls(module.statementBlock).findAll {
    it instanceof MethodCallExpression && it.methodAsString == 'pipeline'
}
if (pipelines.size() != 1) {
    problems << "the file needs exactly one pipeline { } block (has ${pipelines.size()})"
} else {
    def body = closureOf(pipelines[0])
    def seen = [] as Set
    for (c in calls(body)) {
        if (!(c instanceof MethodCallExpression) || !(c.methodAsString in pipelineSections)) {
            problems << "${where(c)}: unknown section in pipeline: ${c instanceof MethodCallExpression ? c.methodAsString : c.text}"
            continue
        }
        if (!seen.add(c.methodAsString)) problems << "${where(c)}: pipeline has two ${c.methodAsString} sections"
        switch (c.methodAsString) {
            case 'stages': checkStages(closureOf(c), 'stages'); break
            case 'post': checkPost(closureOf(c), 'pipeline'); break
            case 'agent': checkAgent(c); break
        }
    }
    for (required in ['agent', 'stages']) {
        if (!(required in seen)) problems << "pipeline has no ${required} section"
    }
}

problems.each { println it }
System.exit(problems ? 1 : 0)
