//! The fallback for statements sqlparser cannot parse (some `CREATE TRIGGER`
//! and PL/pgSQL forms): the same destructive shapes, looked for in the
//! *tokens*. The tokenizer turns comments into whitespace and string literals
//! into single tokens, so `DROP/**/body` is still `DROP` `body` and a `'drop
//! table'` literal is never a keyword — nothing here ever looks at raw text.
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer, TokenizerError};

/// The longest statement quoted back in a refusal.
const EXCERPT_CHARS: usize = 200;

/// One past the end of the statement that starts at `start` (its `;` included).
///
/// A `;` at parenthesis depth 0 ends a statement, except inside the
/// `BEGIN … END` body of a `CREATE` statement (a SQLite trigger, a `BEGIN
/// ATOMIC` function), whose own statements end with `;` too.
pub fn statement_end(tokens: &[TokenWithSpan], start: usize) -> usize {
    let is_create = significant(&tokens[start..])
        .next()
        .is_some_and(|t| keyword(t) == Some(Keyword::CREATE));
    let (mut parens, mut blocks) = (0i32, 0i32);
    for (i, t) in tokens.iter().enumerate().skip(start) {
        match &t.token {
            Token::LParen => parens += 1,
            Token::RParen => parens -= 1,
            Token::SemiColon if parens <= 0 && blocks <= 0 => return i + 1,
            token if is_create && parens <= 0 => match keyword(token) {
                // CASE … END nests inside bodies; counting it keeps its END
                // from closing the body.
                Some(Keyword::BEGIN | Keyword::CASE) => blocks += 1,
                Some(Keyword::END) => blocks -= 1,
                _ => {}
            },
            _ => {}
        }
    }
    tokens.len()
}

/// The first destructive statement in `tokens`, one statement as delimited by
/// [`statement_end`].
pub fn destructive(tokens: &[TokenWithSpan]) -> Result<Option<String>, TokenizerError> {
    let sig: Vec<&Token> = significant(tokens).collect();
    if sig.first().is_some_and(|t| keyword(t) == Some(Keyword::DO)) {
        return do_block(&sig);
    }
    // Statements inside a body (after a `;` within this one) run when the
    // trigger or function fires, not now: there a `DELETE` is the body's
    // business. Schema changes cannot be in such a body, so finding one means
    // the statement was delimited wrongly and it runs now.
    Ok(starts(&sig, &[])
        .enumerate()
        .find(|&(n, s)| destructive_at(&sig[s..], n == 0))
        .map(|(_, s)| excerpt(&sig[s..])))
}

/// `DO $$ … $$` runs its body now: the statements of the PL/pgSQL body are
/// checked like the migration's own. (SQL it builds at run time and runs with
/// `EXECUTE` is not followed.)
fn do_block(sig: &[&Token]) -> Result<Option<String>, TokenizerError> {
    for token in sig {
        let body = match token {
            Token::DollarQuotedString(s) => &s.value,
            Token::SingleQuotedString(s) => s,
            _ => continue,
        };
        let tokens = Tokenizer::new(&PostgreSqlDialect {}, body).tokenize_with_location()?;
        let body: Vec<&Token> = significant(&tokens).collect();
        // PL/pgSQL statements also start after the words that open a block or branch.
        if let Some(s) = starts(&body, &["BEGIN", "THEN", "ELSE", "LOOP"])
            .find(|&s| destructive_at(&body[s..], true))
        {
            return Ok(Some(excerpt(&body[s..])));
        }
    }
    Ok(None)
}

/// Where statements start in `sig`: its beginning, after each `;` at depth 0,
/// and after each unquoted word in `openers`.
fn starts<'a>(sig: &'a [&Token], openers: &'a [&str]) -> impl Iterator<Item = usize> + 'a {
    let mut depth = 0i32;
    let after = sig.iter().enumerate().filter_map(move |(i, t)| {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        let opens = (matches!(t, Token::SemiColon) && depth <= 0)
            || matches!(t, Token::Word(w) if w.quote_style.is_none()
                && openers.iter().any(|o| w.value.eq_ignore_ascii_case(o)));
        (opens && i + 1 < sig.len()).then_some(i + 1)
    });
    std::iter::once(0)
        .filter(move |_| !sig.is_empty())
        .chain(after)
}

/// Whether the statement at the start of `stmt` (up to its `;`) is destructive.
/// `DELETE` without `WHERE` counts only where it runs now (`with_delete`).
fn destructive_at(stmt: &[&Token], with_delete: bool) -> bool {
    let stmt = until_semicolon(stmt);
    let kw = |i: usize| stmt.get(i).and_then(|t| keyword(t));
    match kw(0) {
        Some(Keyword::DROP) => {
            let object = match kw(1) {
                Some(Keyword::TEMP | Keyword::TEMPORARY) => kw(2),
                other => other,
            };
            matches!(
                object,
                Some(Keyword::TABLE | Keyword::SCHEMA | Keyword::DATABASE)
            ) || stmt.iter().any(|t| keyword(t) == Some(Keyword::CASCADE))
        }
        Some(Keyword::TRUNCATE) => true,
        Some(Keyword::DELETE) => {
            with_delete && !at_depth_zero(stmt).any(|t| keyword(t) == Some(Keyword::WHERE))
        }
        Some(Keyword::ALTER) if kw(1) == Some(Keyword::TABLE) => {
            alter_table_clauses(stmt).any(|clause| {
                let ckw = |i: usize| clause.get(i).and_then(|t| keyword(t));
                matches!(ckw(0), Some(Keyword::DROP | Keyword::RENAME))
                    && ckw(1) != Some(Keyword::CONSTRAINT)
            })
        }
        _ => false,
    }
}

/// The clauses of `ALTER TABLE [IF EXISTS] [ONLY] name [*] clause, clause…`.
fn alter_table_clauses<'a>(stmt: &'a [&'a Token]) -> impl Iterator<Item = &'a [&'a Token]> {
    let mut i = 2;
    while matches!(
        stmt.get(i).and_then(|t| keyword(t)),
        Some(Keyword::IF | Keyword::EXISTS | Keyword::ONLY)
    ) {
        i += 1;
    }
    // The (possibly qualified) table name.
    i += 1;
    while matches!(stmt.get(i), Some(Token::Period)) {
        i += 2;
    }
    if matches!(stmt.get(i), Some(Token::Mul)) {
        i += 1;
    }
    let rest = stmt.get(i..).unwrap_or_default();
    let mut depth = 0i32;
    rest.split(move |t| {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        matches!(t, Token::Comma) && depth <= 0
    })
}

/// The tokens of `stmt` outside parentheses.
fn at_depth_zero<'a>(stmt: &'a [&'a Token]) -> impl Iterator<Item = &'a Token> {
    let mut depth = 0i32;
    stmt.iter().copied().filter(move |t| {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        depth <= 0
    })
}

fn until_semicolon<'a>(stmt: &'a [&'a Token]) -> &'a [&'a Token] {
    let mut depth = 0i32;
    let end = stmt.iter().position(|t| {
        match t {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ => {}
        }
        matches!(t, Token::SemiColon) && depth <= 0
    });
    &stmt[..end.unwrap_or(stmt.len())]
}

/// Tokens other than whitespace and comments.
fn significant(tokens: &[TokenWithSpan]) -> impl Iterator<Item = &Token> {
    tokens
        .iter()
        .map(|t| &t.token)
        .filter(|t| !matches!(t, Token::Whitespace(_)))
}

/// The keyword a token is, if it is an unquoted one (`"drop"` is a name).
fn keyword(token: &Token) -> Option<Keyword> {
    match token {
        Token::Word(w) if w.quote_style.is_none() && w.keyword != Keyword::NoKeyword => {
            Some(w.keyword)
        }
        _ => None,
    }
}

/// The statement at the start of `sig`, comments dropped, for the refusal.
fn excerpt(sig: &[&Token]) -> String {
    let mut text = String::new();
    let mut glue = true;
    for token in until_semicolon(sig) {
        let tight = matches!(token, Token::Comma | Token::RParen | Token::Period);
        if !glue && !tight {
            text.push(' ');
        }
        text.push_str(&token.to_string());
        glue = matches!(token, Token::LParen | Token::Period);
    }
    shorten(text)
}

/// At most [`EXCERPT_CHARS`] characters of `text`.
pub fn shorten(text: String) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}
