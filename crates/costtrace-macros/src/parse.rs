//! Parses `#[tracked(...)]` and the function it is put on.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, LitStr, Pat, Token};

/// Argument names that become scope attributes without being listed.
pub(crate) const AUTO_FIELDS: &[&str] = &[
    "job_id",
    "batch_id",
    "task_id",
    "doc_id",
    "entity_id",
    "tenant_id",
    "user_id",
    "request_id",
];

pub(crate) struct Field {
    pub(crate) ident: Ident,
    /// Listed in `fields(...)`: must be `Display` (checked by the compiler).
    pub(crate) explicit: bool,
}

pub(crate) struct Tracked {
    pub(crate) func: ItemFn,
    pub(crate) operation: String,
    pub(crate) fields: Vec<Field>,
}

#[derive(Default)]
struct Args {
    operation: Option<LitStr>,
    fields: Vec<Ident>,
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            match key.to_string().as_str() {
                "operation" | "operation_type" | "name" => {
                    if args.operation.is_some() {
                        return Err(syn::Error::new(key.span(), "`operation` is given twice"));
                    }
                    input.parse::<Token![=]>()?;
                    let lit: LitStr = input.parse().map_err(|e| {
                        syn::Error::new(
                            e.span(),
                            "`operation` takes a string: operation = \"receipt_analysis\"",
                        )
                    })?;
                    if lit.value().trim().is_empty() {
                        return Err(syn::Error::new(lit.span(), "`operation` must not be empty"));
                    }
                    args.operation = Some(lit);
                }
                "fields" => {
                    let content;
                    syn::parenthesized!(content in input);
                    let list = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                    args.fields.extend(list);
                }
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!(
                            "unknown option `{other}`: #[tracked] takes `operation = \"...\"` and `fields(arg, ...)`"
                        ),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

pub(crate) fn parse(args: TokenStream, item: TokenStream) -> syn::Result<Tracked> {
    let args: Args = syn::parse2(args)?;
    let func: ItemFn = syn::parse2(item)
        .map_err(|e| syn::Error::new(e.span(), "#[tracked] goes on a function or method"))?;
    if let Some(c) = &func.sig.constness {
        return Err(syn::Error::new(
            c.span(),
            "#[tracked] cannot be used on a `const fn`",
        ));
    }
    if let Some(v) = &func.sig.variadic {
        return Err(syn::Error::new(
            v.span(),
            "#[tracked] cannot be used on a variadic function",
        ));
    }

    let arg_names: Vec<Ident> = func
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => Some(pi.ident.clone()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();

    let mut fields: Vec<Field> = Vec::new();
    for f in args.fields {
        if !arg_names.contains(&f) {
            return Err(syn::Error::new(
                f.span(),
                format!("`{f}` in fields(...) is not an argument of this function"),
            ));
        }
        if fields.iter().any(|x| x.ident == f) {
            return Err(syn::Error::new(
                f.span(),
                format!("`{f}` is listed twice in fields(...)"),
            ));
        }
        fields.push(Field {
            ident: f,
            explicit: true,
        });
    }
    for a in &arg_names {
        if AUTO_FIELDS.contains(&a.to_string().as_str()) && !fields.iter().any(|x| x.ident == *a) {
            fields.push(Field {
                ident: a.clone(),
                explicit: false,
            });
        }
    }

    let operation = match args.operation {
        Some(l) => l.value(),
        None => func.sig.ident.to_string(),
    };
    Ok(Tracked {
        func,
        operation,
        fields,
    })
}
