//! The subset of POSIX shell that CernVM-FS configuration files use, evaluated without a
//! shell: assignments (`NAME=value`, with `export`/`readonly` prefixes, several per line
//! or `;`-separated), single and double quotes, backslash escapes, `$VAR`, `${VAR}`,
//! `${VAR:-default}` and `${VAR-default}` references, comments, line continuations, and
//! `if`/`elif`/`else`/`fi` over `[ … ]` / `test` conditions (`=`, `==`, `!=`, `-z`, `-n`,
//! a lone word, `!`).
//!
//! Upstream runs every file through `/bin/sh`; we never execute anything. Constructs
//! outside the subset (command substitution, functions, loops, …) are an error naming the
//! file and line, so a configuration is never silently misread
//! (docs/DECISIONS.md, "configuration files").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Where a value was assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub line: usize,
}

/// Variables visible while evaluating: recorded parameters first, then the environment.
pub trait VarLookup {
    fn get(&self, name: &str) -> Option<String>;
}

impl VarLookup for BTreeMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        BTreeMap::get(self, name).cloned()
    }
}

/// One assignment the file performed, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub name: String,
    pub value: String,
    pub line: usize,
    /// `readonly NAME=…`: later files cannot change it.
    pub readonly: bool,
}

/// Sink for assignments: it decides what protection means and records values, and is
/// also where `$VAR` references are resolved (so a file sees its own earlier assignments).
pub trait Scope: VarLookup {
    fn assign(&mut self, assignment: Assignment, file: &Path) -> Result<(), ConfigError>;
    fn unset(&mut self, name: &str);
}

/// Evaluates one configuration file's text.
pub fn evaluate(text: &str, file: &Path, scope: &mut dyn Scope) -> Result<(), ConfigError> {
    let mut conditions = ConditionStack::default();
    for (line_no, line) in logical_lines(text) {
        let ctx = LineCtx { file, line: line_no };
        for statement in split_statements(&line, &ctx)? {
            execute(&statement, &ctx, &mut conditions, scope)?;
        }
    }
    if conditions.depth() > 0 {
        return Err(syntax(&LineCtx { file, line: text.lines().count() }, "missing 'fi' at end of file"));
    }
    Ok(())
}

struct LineCtx<'a> {
    file: &'a Path,
    line: usize,
}

fn syntax(ctx: &LineCtx<'_>, message: impl Into<String>) -> ConfigError {
    ConfigError::Syntax { file: ctx.file.to_path_buf(), line: ctx.line, message: message.into() }
}

/// Joins backslash-continued lines; yields (number of the first physical line, text).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (start, mut joined) = pending.take().unwrap_or((index + 1, String::new()));
        if let Some(stripped) = raw.strip_suffix('\\').filter(|s| !s.ends_with('\\')) {
            joined.push_str(stripped);
            pending = Some((start, joined));
        } else {
            joined.push_str(raw);
            out.push((start, joined));
        }
    }
    out.extend(pending);
    out
}

/// A statement as a list of words, each word a list of parts (quoting kept, so that
/// expansion can tell `"$A"` from `'$A'`).
type Word = Vec<Part>;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Unquoted or double-quoted text that undergoes `$` expansion.
    Expand(String),
    /// Single-quoted or backslash-escaped text, taken literally.
    Literal(String),
}

/// Splits a line into `;`-separated statements of words, stripping comments.
fn split_statements(line: &str, ctx: &LineCtx<'_>) -> Result<Vec<Vec<Word>>, ConfigError> {
    let mut lexer = Lexer { chars: line.chars().collect(), pos: 0 };
    let mut statements = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    loop {
        lexer.skip_blanks();
        match lexer.peek() {
            None => break,
            Some('#') => break,
            Some(';') => {
                lexer.pos += 1;
                statements.push(std::mem::take(&mut words));
            }
            Some('&' | '|' | '<' | '>' | '(' | ')' | '`') => {
                return Err(syntax(ctx, format!("unsupported shell syntax near '{}'", lexer.rest())));
            }
            Some(_) => words.push(lexer.word(ctx)?),
        }
    }
    statements.push(words);
    statements.retain(|s| !s.is_empty());
    Ok(statements)
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn rest(&self) -> String {
        self.chars[self.pos..].iter().collect()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.pos += 1;
        }
    }

    fn word(&mut self, ctx: &LineCtx<'_>) -> Result<Word, ConfigError> {
        let mut parts = Vec::new();
        let mut plain = String::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' | ';' => break,
                '&' | '|' | '<' | '>' | '(' | ')' | '`' => {
                    return Err(syntax(ctx, format!("unsupported shell syntax near '{}'", self.rest())));
                }
                '\'' => {
                    flush(&mut plain, &mut parts);
                    parts.push(Part::Literal(self.single_quoted(ctx)?));
                }
                '"' => {
                    flush(&mut plain, &mut parts);
                    parts.extend(self.double_quoted(ctx)?);
                }
                '\\' => {
                    flush(&mut plain, &mut parts);
                    self.pos += 1;
                    if let Some(escaped) = self.peek() {
                        parts.push(Part::Literal(escaped.to_string()));
                        self.pos += 1;
                    }
                }
                '$' => {
                    plain.push_str(&self.dollar(ctx)?);
                }
                _ => {
                    plain.push(c);
                    self.pos += 1;
                }
            }
        }
        flush(&mut plain, &mut parts);
        Ok(parts)
    }

    fn single_quoted(&mut self, ctx: &LineCtx<'_>) -> Result<String, ConfigError> {
        self.pos += 1;
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == '\'' {
                let text = self.chars[start..self.pos].iter().collect();
                self.pos += 1;
                return Ok(text);
            }
            self.pos += 1;
        }
        Err(syntax(ctx, "unterminated single quote"))
    }

    fn double_quoted(&mut self, ctx: &LineCtx<'_>) -> Result<Vec<Part>, ConfigError> {
        self.pos += 1;
        let mut parts = Vec::new();
        let mut text = String::new();
        while let Some(c) = self.peek() {
            match c {
                '"' => {
                    self.pos += 1;
                    flush(&mut text, &mut parts);
                    // An empty "" still makes a (empty) word.
                    if parts.is_empty() {
                        parts.push(Part::Literal(String::new()));
                    }
                    return Ok(parts);
                }
                '\\' if matches!(self.chars.get(self.pos + 1), Some('"' | '\\' | '$' | '`')) => {
                    flush(&mut text, &mut parts);
                    parts.push(Part::Literal(self.chars[self.pos + 1].to_string()));
                    self.pos += 2;
                }
                '`' => return Err(syntax(ctx, "command substitution is not supported")),
                '$' => text.push_str(&self.dollar(ctx)?),
                _ => {
                    text.push(c);
                    self.pos += 1;
                }
            }
        }
        Err(syntax(ctx, "unterminated double quote"))
    }

    /// Copies a `$…` reference verbatim (expanded later); refuses `$(…)` and `$((…))`.
    fn dollar(&mut self, ctx: &LineCtx<'_>) -> Result<String, ConfigError> {
        let start = self.pos;
        self.pos += 1;
        match self.peek() {
            Some('(') => Err(syntax(ctx, "command substitution $(...) is not supported")),
            Some('{') => {
                while let Some(c) = self.peek() {
                    self.pos += 1;
                    if c == '}' {
                        return Ok(self.chars[start..self.pos].iter().collect());
                    }
                }
                Err(syntax(ctx, "unterminated ${...}"))
            }
            _ => {
                while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                Ok(self.chars[start..self.pos].iter().collect())
            }
        }
    }
}

fn flush(plain: &mut String, parts: &mut Vec<Part>) {
    if !plain.is_empty() {
        parts.push(Part::Expand(std::mem::take(plain)));
    }
}

/// Expands `$` references in a word and concatenates its parts.
fn expand(word: &Word, scope: &dyn VarLookup, ctx: &LineCtx<'_>) -> Result<String, ConfigError> {
    let mut out = String::new();
    for part in word {
        match part {
            Part::Literal(text) => out.push_str(text),
            Part::Expand(text) => out.push_str(&expand_dollars(text, scope, ctx)?),
        }
    }
    Ok(out)
}

fn expand_dollars(text: &str, scope: &dyn VarLookup, ctx: &LineCtx<'_>) -> Result<String, ConfigError> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find('$') {
        out.push_str(&rest[..index]);
        rest = &rest[index + 1..];
        if let Some(braced) = rest.strip_prefix('{') {
            let end = braced.find('}').ok_or_else(|| syntax(ctx, "unterminated ${...}"))?;
            out.push_str(&expand_braced(&braced[..end], scope, ctx)?);
            rest = &braced[end + 1..];
        } else {
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(&scope.get(&rest[..len]).unwrap_or_default());
            }
            rest = &rest[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `${NAME}`, `${NAME:-default}` (default if unset or empty), `${NAME-default}` (if unset).
fn expand_braced(inner: &str, scope: &dyn VarLookup, ctx: &LineCtx<'_>) -> Result<String, ConfigError> {
    let name_len = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(inner.len());
    let (name, op) = inner.split_at(name_len);
    if name.is_empty() {
        return Err(syntax(ctx, format!("unsupported parameter expansion ${{{inner}}}")));
    }
    let value = scope.get(name);
    if op.is_empty() {
        return Ok(value.unwrap_or_default());
    }
    let (use_default, default) = if let Some(default) = op.strip_prefix(":-") {
        (value.as_deref().is_none_or(str::is_empty), default)
    } else if let Some(default) = op.strip_prefix('-') {
        (value.is_none(), default)
    } else {
        return Err(syntax(ctx, format!("unsupported parameter expansion ${{{inner}}}")));
    };
    if use_default {
        expand_dollars(default, scope, ctx)
    } else {
        Ok(value.unwrap_or_default())
    }
}

/// Tracks nested `if` blocks: whether the current branch runs, and whether any branch
/// of the block has run yet (for `elif`/`else`).
#[derive(Default)]
struct ConditionStack {
    frames: Vec<Frame>,
}

struct Frame {
    parent_active: bool,
    branch_active: bool,
    taken: bool,
    /// `if COND` seen, `then` not yet.
    awaiting_then: bool,
}

impl ConditionStack {
    fn active(&self) -> bool {
        self.frames.last().is_none_or(|f| f.parent_active && f.branch_active && !f.awaiting_then)
    }
    fn depth(&self) -> usize {
        self.frames.len()
    }
}

fn execute(
    words: &[Word],
    ctx: &LineCtx<'_>,
    conditions: &mut ConditionStack,
    scope: &mut dyn Scope,
) -> Result<(), ConfigError> {
    let keyword = keyword_of(words);
    match keyword.as_deref() {
        Some("if") => {
            let parent_active = conditions.active();
            let holds = parent_active && evaluate_condition(&words[1..], ctx, scope)?;
            conditions.frames.push(Frame {
                parent_active,
                branch_active: holds,
                taken: holds,
                awaiting_then: true,
            });
            Ok(())
        }
        Some("then") => {
            let frame = conditions.frames.last_mut().ok_or_else(|| syntax(ctx, "'then' without 'if'"))?;
            if !frame.awaiting_then {
                return Err(syntax(ctx, "unexpected 'then'"));
            }
            frame.awaiting_then = false;
            match words.get(1..) {
                Some(rest) if !rest.is_empty() => execute(rest, ctx, conditions, scope),
                _ => Ok(()),
            }
        }
        Some("elif") => {
            let taken = conditions
                .frames
                .last()
                .map(|f| f.taken)
                .ok_or_else(|| syntax(ctx, "'elif' without 'if'"))?;
            let parent_active = conditions.frames.last().is_some_and(|f| f.parent_active);
            let holds = parent_active && !taken && evaluate_condition(&words[1..], ctx, scope)?;
            let frame = conditions.frames.last_mut().ok_or_else(|| syntax(ctx, "'elif' without 'if'"))?;
            frame.branch_active = holds;
            frame.taken |= holds;
            frame.awaiting_then = true;
            Ok(())
        }
        Some("else") => {
            let frame = conditions.frames.last_mut().ok_or_else(|| syntax(ctx, "'else' without 'if'"))?;
            frame.branch_active = !frame.taken;
            frame.taken = true;
            match words.get(1..) {
                Some(rest) if !rest.is_empty() => execute(rest, ctx, conditions, scope),
                _ => Ok(()),
            }
        }
        Some("fi") => {
            conditions.frames.pop().ok_or_else(|| syntax(ctx, "'fi' without 'if'"))?;
            Ok(())
        }
        _ if !conditions.active() => Ok(()),
        _ => execute_simple(words, ctx, scope),
    }
}

/// The first word when it is a plain unquoted keyword.
fn keyword_of(words: &[Word]) -> Option<String> {
    match words.first()?.as_slice() {
        [Part::Expand(text)] => Some(text.clone()),
        _ => None,
    }
}

fn execute_simple(words: &[Word], ctx: &LineCtx<'_>, scope: &mut dyn Scope) -> Result<(), ConfigError> {
    let (command, args) = match keyword_of(words).as_deref() {
        Some(c @ ("export" | "readonly" | "unset" | "true" | ":")) => (Some(c.to_string()), &words[1..]),
        _ => (None, words),
    };
    match command.as_deref() {
        Some("true" | ":") => Ok(()),
        Some("unset") => {
            for word in args {
                scope.unset(&expand(word, scope, ctx)?);
            }
            Ok(())
        }
        Some(prefix) => assign_all(args, prefix == "readonly", true, ctx, scope),
        None => assign_all(args, false, false, ctx, scope),
    }
}

/// `NAME=value …`; with `export`/`readonly`, bare names are allowed and change nothing.
fn assign_all(
    words: &[Word],
    readonly: bool,
    bare_names_allowed: bool,
    ctx: &LineCtx<'_>,
    scope: &mut dyn Scope,
) -> Result<(), ConfigError> {
    for word in words {
        match split_assignment(word) {
            Some((name, value_word)) => {
                let value = expand(&value_word, scope, ctx)?;
                scope.assign(Assignment { name, value, line: ctx.line, readonly }, ctx.file)?;
            }
            None if bare_names_allowed => {}
            None => {
                let text = expand(word, scope, ctx).unwrap_or_default();
                return Err(syntax(ctx, format!("'{text}' is not an assignment (commands are not run)")));
            }
        }
    }
    Ok(())
}

/// Splits `NAME=rest` where NAME is a valid unquoted shell identifier.
fn split_assignment(word: &Word) -> Option<(String, Word)> {
    let Some(Part::Expand(first)) = word.first() else { return None };
    let eq = first.find('=')?;
    let name = &first[..eq];
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return None;
    }
    let mut value = Vec::new();
    let rest = &first[eq + 1..];
    if !rest.is_empty() {
        value.push(Part::Expand(rest.to_string()));
    }
    value.extend(word[1..].iter().cloned());
    Some((name.to_string(), value))
}

/// `[ … ]`, `test …`, with a trailing `then` allowed on the same line.
fn evaluate_condition(words: &[Word], ctx: &LineCtx<'_>, scope: &dyn VarLookup) -> Result<bool, ConfigError> {
    let mut expanded = Vec::with_capacity(words.len());
    for word in words {
        expanded.push(expand(word, scope, ctx)?);
    }
    let mut tokens: &[String] = &expanded;
    if let Some((last, init)) = tokens.split_last() {
        if last == "then" && keyword_like(words.last()) {
            tokens = init;
        }
    }
    let negated = tokens.first().is_some_and(|t| t == "!");
    if negated {
        tokens = &tokens[1..];
    }
    let inner = match tokens {
        [open, inner @ .., close] if open == "[" && close == "]" => inner,
        [test, inner @ ..] if test == "test" => inner,
        _ => return Err(syntax(ctx, "only '[ ... ]' and 'test' conditions are supported")),
    };
    let holds = test_expression(inner)
        .ok_or_else(|| syntax(ctx, format!("unsupported test expression '{}'", inner.join(" "))))?;
    Ok(holds != negated)
}

fn keyword_like(word: Option<&Word>) -> bool {
    matches!(word.map(Vec::as_slice), Some([Part::Expand(_)]))
}

fn test_expression(tokens: &[String]) -> Option<bool> {
    match tokens {
        [bang, rest @ ..] if bang == "!" => test_expression(rest).map(|b| !b),
        [] => Some(false),
        [word] => Some(!word.is_empty()),
        [op, word] if op == "-z" => Some(word.is_empty()),
        [op, word] if op == "-n" => Some(!word.is_empty()),
        [a, op, b] if op == "=" || op == "==" => Some(a == b),
        [a, op, b] if op == "!=" => Some(a != b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct TestScope {
        vars: BTreeMap<String, String>,
        log: Vec<Assignment>,
    }
    impl VarLookup for TestScope {
        fn get(&self, name: &str) -> Option<String> {
            self.vars.get(name).cloned()
        }
    }
    impl Scope for TestScope {
        fn assign(&mut self, a: Assignment, _file: &Path) -> Result<(), ConfigError> {
            self.vars.insert(a.name.clone(), a.value.clone());
            self.log.push(a);
            Ok(())
        }
        fn unset(&mut self, name: &str) {
            self.vars.remove(name);
        }
    }

    fn run(text: &str) -> Result<TestScope, ConfigError> {
        let mut scope = TestScope::default();
        scope.vars.insert("HOME".into(), "/root".into());
        evaluate(text, Path::new("/etc/cvmfs/test.conf"), &mut scope)?;
        Ok(scope)
    }

    fn value(text: &str, name: &str) -> String {
        run(text).unwrap().vars.get(name).cloned().unwrap_or_else(|| panic!("{name} unset"))
    }

    #[test]
    fn quoting_and_escapes() {
        assert_eq!(value("A='p1;p2'", "A"), "p1;p2");
        assert_eq!(value(r#"A="x y""#, "A"), "x y");
        assert_eq!(value(r#"A=a\ b"#, "A"), "a b");
        assert_eq!(value(r#"A="say \"hi\" \$HOME""#, "A"), r#"say "hi" $HOME"#);
        assert_eq!(value("A='$HOME'", "A"), "$HOME");
        assert_eq!(value("A=\"\"", "A"), "");
        assert_eq!(value("A=", "A"), "");
        assert_eq!(value("A=x#y # comment", "A"), "x#y");
    }

    #[test]
    fn references_see_earlier_values() {
        assert_eq!(value("A=1\nB=$A/x", "B"), "1/x");
        assert_eq!(value("B=${HOME}/x", "B"), "/root/x");
        assert_eq!(value("B=${NOPE:-dflt}", "B"), "dflt");
        assert_eq!(value("E=\nB=${E:-dflt}", "B"), "dflt");
        assert_eq!(value("E=\nB=${E-dflt}", "B"), "");
        assert_eq!(value("B=\"$NOPE\"x", "B"), "x");
        assert_eq!(value("B=cost$", "B"), "cost$");
        assert_eq!(value("A=1; B=2; export C=3 D=4", "D"), "4");
    }

    #[test]
    fn prefixes_and_continuations() {
        let scope = run("readonly CVMFS_USER=cvmfs\nexport X=1\nexport X\nY=a\\\nb").unwrap();
        assert!(scope.log[0].readonly);
        assert_eq!(scope.vars["X"], "1");
        assert_eq!(scope.vars["Y"], "ab");
        assert_eq!(scope.log.last().unwrap().line, 4);
    }

    #[test]
    fn conditionals_pick_one_branch() {
        let text = "if [ \"$MODE\" = \"\" ]; then\n  A=empty\nelif [ \"$MODE\" = x ]\nthen\n  A=x\nelse\n  A=other\nfi";
        assert_eq!(value(text, "A"), "empty");
        assert_eq!(value(&format!("MODE=x\n{text}"), "A"), "x");
        assert_eq!(value(&format!("MODE=y\n{text}"), "A"), "other");
        assert_eq!(value("if [ -n \"$HOME\" ]; then A=1; fi", "A"), "1");
        assert!(!run("if [ -z \"$HOME\" ]; then A=1; fi").unwrap().vars.contains_key("A"));
        assert_eq!(value("if ! [ -z x ]; then A=1; fi", "A"), "1");
        let nested = "if [ a = a ]; then\nif [ a = b ]; then A=1; else A=2; fi\nfi";
        assert_eq!(value(nested, "A"), "2");
        assert!(!run("if [ a = b ]; then\nif [ a = a ]; then A=1; fi\nfi").unwrap().vars.contains_key("A"));
    }

    #[test]
    fn unsupported_constructs_name_file_and_line() {
        for (text, line) in [
            ("A=1\nB=$(hostname)", 2),
            ("A=`hostname`", 1),
            ("echo hi", 1),
            ("A=1 && B=2", 1),
            ("A='open", 1),
            ("if [ a = a ]; then\nA=1", 2),
            ("fi", 1),
        ] {
            match run(text) {
                Err(ConfigError::Syntax { file, line: got, .. }) => {
                    assert_eq!(file, Path::new("/etc/cvmfs/test.conf"), "{text}");
                    assert_eq!(got, line, "{text}");
                }
                other => {
                    panic!("{text}: expected a syntax error, got {other:?}", other = other.map(|s| s.vars))
                }
            }
        }
    }
}
