//! The subset of GitHub Actions expressions (`${{ ... }}`) that our workflow
//! and actions use, evaluated the way GitHub documents them: loose equality
//! (case-insensitive for strings, numbers otherwise), `&&`/`||` returning an
//! operand, missing properties as null. Anything outside the subset is an
//! error naming the expression, so the local runner never guesses.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// What an expression can read: one JSON object per context (`github`,
/// `env`, `inputs`, `matrix`, `needs`, `steps`, `secrets`, `vars`, `runner`)
/// and the status the status functions report.
pub struct Scope {
    pub contexts: Map<String, Value>,
    /// True when an earlier step (or needed job) failed.
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Str(String),
    Num(f64),
    Ident(String),
    Dot,
    Comma,
    Open,
    Close,
    Not,
    Eq,
    Ne,
    And,
    Or,
}

#[derive(Debug, Clone)]
enum Expr {
    Lit(Value),
    Context(String),
    Prop(Box<Expr>, String),
    Call(String, Vec<Expr>),
    Not(Box<Expr>),
    Eq(Box<Expr>, Box<Expr>, bool),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

const CONTEXTS: &[&str] = &[
    "github", "env", "inputs", "matrix", "needs", "steps", "secrets", "vars", "runner",
];
const STATUS_FUNCTIONS: &[&str] = &["success", "failure", "always", "cancelled"];

/// Evaluates one expression (the text between `${{` and `}}`).
pub fn eval(text: &str, scope: &Scope) -> Result<Value, String> {
    let ast = parse(text)?;
    eval_ast(&ast, scope).map_err(|e| format!("${{{{ {} }}}}: {e}", text.trim()))
}

/// Evaluates an `if:` condition: a bare expression or one `${{ }}`; without
/// a status function it means `success() && (COND)`, as on GitHub.
pub fn condition(text: &str, scope: &Scope) -> Result<bool, String> {
    let t = text.trim();
    let inner = match t.strip_prefix("${{").and_then(|r| r.strip_suffix("}}")) {
        Some(inner) if !inner.contains("${{") => inner,
        _ if t.contains("${{") => {
            return Err(format!(
                "if: {t:?} mixes text and ${{{{ }}}}: not supported by the local runner"
            ));
        }
        _ => t,
    };
    let ast = parse(inner)?;
    let value = eval_ast(&ast, scope).map_err(|e| format!("if: {}: {e}", inner.trim()))?;
    Ok(if has_status_call(&ast) {
        truthy(&value)
    } else {
        !scope.failed && truthy(&value)
    })
}

/// Replaces every `${{ expr }}` in `text` with its value as a string.
pub fn interpolate(text: &str, scope: &Scope) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 3..];
        let end = closing(after).ok_or_else(|| format!("unclosed ${{{{ in {text:?}"))?;
        let value = eval(&after[..end], scope)?;
        out.push_str(&to_text(&value).map_err(|e| format!("${{{{{}}}}}: {e}", &after[..end]))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// As [`interpolate`], but a value that is exactly one `${{ expr }}` keeps
/// its type (a matrix list from `fromJSON`, a boolean).
pub fn evaluate_value(text: &str, scope: &Scope) -> Result<Value, String> {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix("${{")
        && closing(inner) == Some(inner.len() - 2)
    {
        return eval(&inner[..inner.len() - 2], scope);
    }
    interpolate(text, scope).map(Value::String)
}

/// How GitHub turns a value into text inside a string.
pub fn to_text(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => number_text(as_number(v)),
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) => {
            return Err("an object or array in text: use toJSON()".into());
        }
    })
}

/// GitHub's truthiness: false, 0, -0, NaN, '' and null are false.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(_) => {
            let n = as_number(v);
            n != 0.0 && !n.is_nan()
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Index of the `}}` that closes an expression, skipping string literals.
fn closing(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        match b[i] {
            b'\'' => in_str = !in_str,
            b'}' if !in_str && b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn tokens(text: &str) -> Result<Vec<Token>, String> {
    let err = |what: &str| format!("${{{{ {} }}}}: {what}", text.trim());
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            c if c.is_whitespace() => i += 1,
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err("unclosed string literal")),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            s.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            s.push(*c);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            }
            '(' => (out.push(Token::Open), i += 1).1,
            ')' => (out.push(Token::Close), i += 1).1,
            ',' => (out.push(Token::Comma), i += 1).1,
            '.' if !next.is_some_and(|n| n.is_ascii_digit()) => (out.push(Token::Dot), i += 1).1,
            '=' if next == Some('=') => (out.push(Token::Eq), i += 2).1,
            '!' if next == Some('=') => (out.push(Token::Ne), i += 2).1,
            '!' => (out.push(Token::Not), i += 1).1,
            '&' if next == Some('&') => (out.push(Token::And), i += 2).1,
            '|' if next == Some('|') => (out.push(Token::Or), i += 2).1,
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '-')
                {
                    i += 1;
                }
                let lit: String = chars[start..i].iter().collect();
                let n = parse_number(&lit).ok_or_else(|| err(&format!("bad number {lit}")))?;
                out.push(Token::Num(n));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                out.push(Token::Ident(chars[start..i].iter().collect()));
            }
            other => {
                return Err(err(&format!(
                    "{other:?} is not in the local runner's expression subset \
                     (literals, contexts, ==, !=, &&, ||, !, (), functions)"
                )));
            }
        }
    }
    Ok(out)
}

fn parse_number(lit: &str) -> Option<f64> {
    if let Some(hex) = lit.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(|n| n as f64);
    }
    lit.parse::<f64>().ok()
}

fn parse(text: &str) -> Result<Expr, String> {
    let toks = tokens(text)?;
    let mut p = Parser { toks, pos: 0 };
    let e = p
        .or()
        .map_err(|e| format!("${{{{ {} }}}}: {e}", text.trim()))?;
    if p.pos != p.toks.len() {
        return Err(format!(
            "${{{{ {} }}}}: unexpected {:?}",
            text.trim(),
            p.toks[p.pos]
        ));
    }
    Ok(e)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.eat(&Token::Or) {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.equality()?;
        while self.eat(&Token::And) {
            e = Expr::And(Box::new(e), Box::new(self.equality()?));
        }
        Ok(e)
    }

    fn equality(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        loop {
            let negate = if self.eat(&Token::Eq) {
                false
            } else if self.eat(&Token::Ne) {
                true
            } else {
                return Ok(e);
            };
            e = Expr::Eq(Box::new(e), Box::new(self.unary()?), negate);
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat(&Token::Not) {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let tok = self.peek().cloned().ok_or("expression ends too early")?;
        self.pos += 1;
        let mut e = match tok {
            Token::Str(s) => Expr::Lit(Value::String(s)),
            Token::Num(n) => Expr::Lit(number(n)),
            Token::Open => {
                let e = self.or()?;
                if !self.eat(&Token::Close) {
                    return Err("missing )".into());
                }
                e
            }
            Token::Ident(name) => match name.as_str() {
                "true" => Expr::Lit(Value::Bool(true)),
                "false" => Expr::Lit(Value::Bool(false)),
                "null" => Expr::Lit(Value::Null),
                _ if self.eat(&Token::Open) => {
                    let mut args = Vec::new();
                    if !self.eat(&Token::Close) {
                        loop {
                            args.push(self.or()?);
                            if self.eat(&Token::Close) {
                                break;
                            }
                            if !self.eat(&Token::Comma) {
                                return Err(format!("missing , or ) in {name}()"));
                            }
                        }
                    }
                    Expr::Call(name, args)
                }
                _ if CONTEXTS.contains(&name.as_str()) => Expr::Context(name),
                _ => {
                    return Err(format!(
                        "{name} is not a context the local runner knows ({})",
                        CONTEXTS.join(", ")
                    ));
                }
            },
            other => return Err(format!("unexpected {other:?}")),
        };
        while self.eat(&Token::Dot) {
            match self.peek().cloned() {
                Some(Token::Ident(prop)) => {
                    self.pos += 1;
                    e = Expr::Prop(Box::new(e), prop);
                }
                other => return Err(format!("expected a property name after '.', got {other:?}")),
            }
        }
        Ok(e)
    }
}

fn has_status_call(e: &Expr) -> bool {
    match e {
        Expr::Call(name, args) => {
            STATUS_FUNCTIONS.contains(&name.to_ascii_lowercase().as_str())
                || args.iter().any(has_status_call)
        }
        Expr::Prop(e, _) | Expr::Not(e) => has_status_call(e),
        Expr::Eq(a, b, _) | Expr::And(a, b) | Expr::Or(a, b) => {
            has_status_call(a) || has_status_call(b)
        }
        Expr::Lit(_) | Expr::Context(_) => false,
    }
}

fn eval_ast(e: &Expr, scope: &Scope) -> Result<Value, String> {
    Ok(match e {
        Expr::Lit(v) => v.clone(),
        Expr::Context(name) => scope
            .contexts
            .get(name)
            .cloned()
            .ok_or_else(|| format!("the {name} context is not available here"))?,
        // A missing property is null, as on GitHub.
        Expr::Prop(obj, prop) => match eval_ast(obj, scope)? {
            Value::Object(map) => map.get(prop).cloned().unwrap_or(Value::Null),
            _ => Value::Null,
        },
        Expr::Not(e) => Value::Bool(!truthy(&eval_ast(e, scope)?)),
        Expr::Eq(a, b, negate) => {
            let equal = loose_eq(&eval_ast(a, scope)?, &eval_ast(b, scope)?);
            Value::Bool(equal != *negate)
        }
        Expr::And(a, b) => {
            let left = eval_ast(a, scope)?;
            if truthy(&left) {
                eval_ast(b, scope)?
            } else {
                left
            }
        }
        Expr::Or(a, b) => {
            let left = eval_ast(a, scope)?;
            if truthy(&left) {
                left
            } else {
                eval_ast(b, scope)?
            }
        }
        Expr::Call(name, args) => call(name, args, scope)?,
    })
}

fn call(name: &str, args: &[Expr], scope: &Scope) -> Result<Value, String> {
    let lower = name.to_ascii_lowercase();
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{name}() takes {n} argument(s), got {}",
                args.len()
            ))
        }
    };
    Ok(match lower.as_str() {
        "success" => (arity(0)?, Value::Bool(!scope.failed)).1,
        "failure" => (arity(0)?, Value::Bool(scope.failed)).1,
        "always" => (arity(0)?, Value::Bool(true)).1,
        // Nothing is ever cancelled here.
        "cancelled" => (arity(0)?, Value::Bool(false)).1,
        "fromjson" => {
            arity(1)?;
            let text = to_text(&eval_ast(&args[0], scope)?)?;
            serde_json::from_str(&text)
                .map_err(|e| format!("fromJSON: {text:?} is not JSON: {e}"))?
        }
        "tojson" => {
            arity(1)?;
            let v = eval_ast(&args[0], scope)?;
            Value::String(serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?)
        }
        // Deterministic, but a hash of the patterns, not of the files they
        // match: enough for cache keys, which nothing here restores.
        "hashfiles" => {
            if args.is_empty() {
                return Err("hashFiles() needs at least one pattern".into());
            }
            let mut h = Sha256::new();
            for a in args {
                h.update(to_text(&eval_ast(a, scope)?)?.as_bytes());
                h.update([0]);
            }
            Value::String(hex::encode(h.finalize()))
        }
        _ => {
            return Err(format!(
                "{name}() is not in the local runner's subset \
                 (success, failure, always, cancelled, fromJSON, toJSON, hashFiles)"
            ));
        }
    })
}

/// GitHub's `==`: same-typed values compare directly (strings ignoring
/// case); otherwise both sides become numbers. Objects and arrays are
/// equal only to themselves, which an expression here cannot express.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::String(x), Value::String(y)) => x.to_lowercase() == y.to_lowercase(),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => false,
        _ => as_number(a) == as_number(b),
    }
}

fn as_number(v: &Value) -> f64 {
    match v {
        Value::Null => 0.0,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) if s.trim().is_empty() => 0.0,
        Value::String(s) => parse_number(s.trim()).unwrap_or(f64::NAN),
        Value::Array(_) | Value::Object(_) => f64::NAN,
    }
}

fn number(n: f64) -> Value {
    serde_json::Number::from_f64(n)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

fn number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(failed: bool) -> Scope {
        let contexts = json!({
            "github": {"event_name": "push", "event": {"before": "abc"}},
            "env": {"SREG_BACKEND": "apptainer"},
            "inputs": {"build-args": "A=1", "push": "true"},
            "needs": {"recipes": {"outputs": {"matrix": "[{\"recipe\":\"a/Singularity\",\"image\":\"lab/a:latest\"}]", "any": "true"}}},
            "steps": {"build": {"outputs": {"sha256": "ff"}}},
            "secrets": {},
            "matrix": {"target": {"image": "lab/a:latest"}},
        });
        Scope {
            contexts: contexts.as_object().unwrap().clone(),
            failed,
        }
    }

    fn ev(text: &str) -> Value {
        eval(text, &scope(false)).unwrap()
    }

    #[test]
    fn literals() {
        assert_eq!(ev("'it''s'"), json!("it's"));
        assert_eq!(ev("42"), json!(42.0));
        assert_eq!(ev("-1.5"), json!(-1.5));
        assert_eq!(ev("0xff"), json!(255.0));
        assert_eq!(ev("true"), json!(true));
        assert_eq!(ev("null"), Value::Null);
    }

    #[test]
    fn contexts_and_missing_properties() {
        assert_eq!(ev("github.event.before"), json!("abc"));
        assert_eq!(ev("github.event.pull_request.base.sha"), Value::Null);
        assert_eq!(ev("inputs.build-args"), json!("A=1"));
        assert_eq!(ev("steps.build.outputs.sha256"), json!("ff"));
        assert_eq!(ev("secrets.SREG_TOKEN"), Value::Null);
        assert_eq!(ev("matrix.target.image"), json!("lab/a:latest"));
    }

    #[test]
    fn loose_equality() {
        assert_eq!(ev("github.event_name == 'PUSH'"), json!(true));
        assert_eq!(ev("github.event_name != 'pull_request'"), json!(true));
        assert_eq!(ev("'1' == 1"), json!(true));
        assert_eq!(ev("'' == 0"), json!(true));
        assert_eq!(ev("true == 1"), json!(true));
        assert_eq!(ev("null == 0"), json!(true));
        assert_eq!(ev("'abc' == 0"), json!(false));
        assert_eq!(ev("fromJSON('{}') == fromJSON('{}')"), json!(false));
    }

    #[test]
    fn logic_returns_operands() {
        assert_eq!(
            ev("steps.push.outputs.image || 'planned'"),
            json!("planned")
        );
        assert_eq!(ev("'a' && 'b'"), json!("b"));
        assert_eq!(ev("'' && 'b'"), json!(""));
        assert_eq!(ev("!(github.event_name == 'push') || false"), json!(false));
        assert_eq!(ev("true || false && false"), json!(true));
    }

    #[test]
    fn functions() {
        let m = ev("fromJSON(needs.recipes.outputs.matrix)");
        assert_eq!(m[0]["image"], json!("lab/a:latest"));
        assert_eq!(ev("fromJSON('[1]')"), json!([1]));
        assert_eq!(
            ev("toJSON(matrix.target)"),
            json!("{\n  \"image\": \"lab/a:latest\"\n}")
        );
        assert_eq!(ev("hashFiles('a')"), ev("hashFiles('a')"));
        assert_ne!(ev("hashFiles('a')"), ev("hashFiles('b')"));
        assert_eq!(ev("FROMJSON('true')"), json!(true));
    }

    #[test]
    fn conditions_default_to_success() {
        let ok = scope(false);
        let failed = scope(true);
        assert!(condition("env.SREG_BACKEND == 'apptainer'", &ok).unwrap());
        assert!(!condition("env.SREG_BACKEND == 'native'", &ok).unwrap());
        assert!(!condition("env.SREG_BACKEND == 'apptainer'", &failed).unwrap());
        assert!(condition("${{ always() }}", &failed).unwrap());
        assert!(condition("failure()", &failed).unwrap());
        assert!(!condition("success()", &failed).unwrap());
        assert!(condition("needs.recipes.outputs.any == 'true'", &ok).unwrap());
    }

    #[test]
    fn interpolation() {
        let s = scope(false);
        assert_eq!(
            interpolate("sreg-${{ github.event_name }}-${{ '}}' }}", &s).unwrap(),
            "sreg-push-}}"
        );
        assert_eq!(interpolate("${{ 1 == 1 }}", &s).unwrap(), "true");
        assert_eq!(interpolate("${{ 3 }}", &s).unwrap(), "3");
        assert_eq!(
            evaluate_value("${{ fromJSON('[1,2]') }}", &s).unwrap(),
            json!([1, 2])
        );
        assert!(interpolate("${{ matrix.target }}", &s).is_err());
        assert!(interpolate("${{ github.sha", &s).is_err());
    }

    #[test]
    fn outside_the_subset_is_an_error_naming_it() {
        let s = scope(false);
        for bad in [
            "github.event_name < 'a'",
            "contains(github.ref, 'main')",
            "job.status",
            "steps.*.outputs",
            "github['sha']",
            "(true",
            "'open",
            "success(1)",
        ] {
            let err = eval(bad, &s).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }
}
