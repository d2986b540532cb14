//! Generates the wrapped function. Everything goes through
//! `::costtrace::__private` so that the expansion does not depend on what the
//! user has imported.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{AttrStyle, ReturnType, Type};

use crate::parse::Tracked;

/// `ty` with every `impl Trait` in it (at any depth: `(impl Display, u32)`,
/// `[impl T; 2]`, `Option<impl T>`) replaced by `_`, so that it can annotate
/// a `let` and a closure's return type; `impl Trait` is not allowed there.
fn without_impl_trait(ty: &Type) -> Type {
    struct Infer;
    impl VisitMut for Infer {
        fn visit_type_mut(&mut self, ty: &mut Type) {
            if let Type::ImplTrait(it) = ty {
                *ty = Type::Infer(syn::TypeInfer {
                    underscore_token: syn::Token![_](it.impl_token.span),
                });
                return;
            }
            visit_mut::visit_type_mut(self, ty);
        }
    }
    let mut ty = ty.clone();
    Infer.visit_type_mut(&mut ty);
    ty
}

/// `!` (possibly parenthesized): the function never returns.
fn is_never(ty: &Type) -> bool {
    match ty {
        Type::Never(_) => true,
        Type::Paren(p) => is_never(&p.elem),
        Type::Group(g) => is_never(&g.elem),
        _ => false,
    }
}

/// The kind of future a sync fn returns, if it returns one.
enum FutureReturn {
    /// `impl Future<Output = T> (+ ...)`, with `T` when it is written.
    Impl(Option<Box<Type>>),
    /// `Pin<Box<dyn Future<Output = T> (+ ...)>>`, as `#[async_trait]` makes.
    PinBox,
}

/// `Some(Output)` when one of `bounds` is `Future` (`Some(None)` if the
/// output type is not written).
fn future_bound<'a>(
    bounds: impl IntoIterator<Item = &'a syn::TypeParamBound>,
) -> Option<Option<Type>> {
    bounds.into_iter().find_map(|b| {
        let syn::TypeParamBound::Trait(t) = b else {
            return None;
        };
        let last = t.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return Some(None);
        };
        Some(args.args.iter().find_map(|a| match a {
            syn::GenericArgument::AssocType(at) if at.ident == "Output" => Some(at.ty.clone()),
            _ => None,
        }))
    })
}

/// The single type argument of a path type whose last segment is `name`.
fn generic_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

fn future_return(ty: &Type) -> Option<FutureReturn> {
    match ty {
        Type::ImplTrait(it) => {
            future_bound(&it.bounds).map(|o| FutureReturn::Impl(o.map(Box::new)))
        }
        Type::Paren(p) => future_return(&p.elem),
        Type::Group(g) => future_return(&g.elem),
        _ => match generic_arg(generic_arg(ty, "Pin")?, "Box")? {
            Type::TraitObject(o) => future_bound(&o.bounds).map(|_| FutureReturn::PinBox),
            _ => None,
        },
    }
}

pub(crate) fn expand(t: Tracked) -> TokenStream {
    let Tracked {
        func,
        operation,
        fields,
    } = t;
    let syn::ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;

    let field_attrs = fields.iter().map(|f| {
        let ident = &f.ident;
        let key = ident.to_string();
        if f.explicit {
            quote_spanned! {ident.span()=>
                {
                    #[allow(unused_imports)]
                    use ::costtrace::__private::{AttrDisplay as _, AttrOption as _, AttrStr as _};
                    (&&&&::costtrace::__private::Probe(&#ident)).costtrace_attr(&mut __costtrace_b, #key);
                }
            }
        } else {
            quote! {
                {
                    #[allow(unused_imports)]
                    use ::costtrace::__private::{AttrDisplay as _, AttrNone as _, AttrOption as _, AttrStr as _};
                    (&&&&::costtrace::__private::Probe(&#ident)).costtrace_attr(&mut __costtrace_b, #key);
                }
            }
        }
    });

    let builder = quote! {
        // Attributes are set in place: a builder moved in and out of each
        // call was copied through the stack every time.
        #[allow(unused_mut)]
        let mut __costtrace_b = ::costtrace::__private::scope(#operation);
        #(#field_attrs)*
    };

    // Outer attributes go on the function; inner ones (`#![allow(..)]`
    // written in the body, which syn moves to `attrs`) back into the body.
    let (outer_attrs, inner_attrs): (Vec<_>, Vec<_>) = attrs
        .into_iter()
        .partition(|a| matches!(a.style, AttrStyle::Outer));

    let future = match &sig.output {
        ReturnType::Type(_, ty) if sig.asyncness.is_none() => future_return(ty),
        _ => None,
    };
    let never = matches!(&sig.output, ReturnType::Type(_, ty) if is_never(ty));
    let ret_ty = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => without_impl_trait(ty).into_token_stream(),
    };
    let out_binding = quote!(let __costtrace_out: #ret_ty);
    let error_of = quote! {
        {
            #[allow(unused_imports)]
            use ::costtrace::__private::{OutcomeOther as _, OutcomeResult as _};
            (&&::costtrace::__private::Probe(&__costtrace_out)).costtrace_error()
        }
    };

    let body = if never {
        // Nothing is returned, so there is no value to inspect and `!`
        // cannot be named in a `let` on stable: the scope is recorded when
        // the guard (or the async scope) drops while unwinding.
        if sig.asyncness.is_some() {
            quote! {
                let __costtrace_active = ::costtrace::__private::start({ #builder __costtrace_b });
                ::costtrace::__private::watched(&__costtrace_active, async move #block).await
            }
        } else {
            let stmts = &block.stmts;
            quote! {
                #builder
                let __costtrace_guard = __costtrace_b.enter();
                #(#stmts)*
            }
        }
    } else if let Some(kind) = future {
        // A sync fn returning a future: the scope starts with the call (the
        // body runs in it) and ends when the returned future completes.
        let tracked = quote! {
            ::costtrace::__private::tracked(__costtrace_active, __costtrace_fut, |__costtrace_out| {
                #[allow(unused_imports)]
                use ::costtrace::__private::{OutcomeOther as _, OutcomeResult as _};
                (&&::costtrace::__private::Probe(__costtrace_out)).costtrace_error()
            })
        };
        // The output type must be known where the error is looked for; with
        // `impl Future<Output = T>` it is only inferred from the return type
        // at the end, so it is given here.
        let output_is = match &kind {
            FutureReturn::Impl(Some(out)) => {
                let out = without_impl_trait(out);
                quote!(let __costtrace_fut = ::costtrace::__private::output_is::<#out, _>(__costtrace_fut);)
            }
            _ => quote!(),
        };
        let ret = match kind {
            FutureReturn::Impl(_) => tracked,
            FutureReturn::PinBox => quote!(::std::boxed::Box::pin(#tracked)),
        };
        quote! {
            #builder
            let __costtrace_active = ::costtrace::__private::start(__costtrace_b);
            let __costtrace_fut = {
                let __costtrace_ctx = __costtrace_active.context().enter();
                ::costtrace::__private::call_once(move || -> #ret_ty #block)
            };
            #output_is
            #ret
        }
    } else if sig.asyncness.is_some() {
        // The output type is fixed before the error is looked for in it.
        // The builder is made in a block of its own: a local of the body,
        // even moved out, keeps its room in the body's future across the
        // `.await` (72 bytes of 216), and a larger future costs more to
        // move (`memcpy` calls when it is spawned or pinned).
        quote! {
            ::costtrace::__private::scoped(
                { #builder __costtrace_b },
                ::costtrace::__private::output_is::<#ret_ty, _>(async move #block),
                |__costtrace_out| {
                    #[allow(unused_imports)]
                    use ::costtrace::__private::{OutcomeOther as _, OutcomeResult as _};
                    (&&::costtrace::__private::Probe(__costtrace_out)).costtrace_error()
                },
            )
            .await
        }
    } else {
        quote! {
            #builder
            let __costtrace_guard = __costtrace_b.enter();
            // Through `call_once`, the closure is `FnOnce`: the body may
            // return borrows of its captures (`&mut self`), while `return`
            // and `?` still leave only the closure, so the value is seen.
            #out_binding = ::costtrace::__private::call_once(move || -> #ret_ty #block);
            if let ::core::option::Option::Some(__costtrace_e) = #error_of {
                __costtrace_guard.fail(__costtrace_e);
            }
            drop(__costtrace_guard);
            __costtrace_out
        }
    };

    quote! {
        #(#outer_attrs)*
        #vis #sig {
            #(#inner_attrs)*
            #body
        }
    }
}
