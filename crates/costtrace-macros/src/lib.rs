//! `#[costtrace::tracked]`: wraps a function in a costtrace scope.
//!
//! Use it through the `costtrace` crate (`costtrace::tracked`); the expansion
//! calls only `::costtrace::__private`.

use proc_macro::TokenStream;

mod expand;
mod parse;

/// Runs the function inside a costtrace scope named after it (or after
/// `operation = "..."`), recorded when it returns, fails or panics.
///
/// Arguments named `job_id`, `batch_id`, `task_id`, `doc_id`, `entity_id`,
/// `tenant_id`, `user_id` or `request_id` become scope attributes when they
/// are `Display` (or an `Option` of a `Display`); `fields(a, b)` adds any
/// other arguments, which must then be `Display`. An `Err` return marks the
/// scope failed with the error's message; a panic marks it failed too.
/// A sync fn returning `impl Future<Output = ..>` or
/// `Pin<Box<dyn Future<Output = ..> ..>>` (what `#[async_trait]` makes) is
/// recorded when the returned future completes, with the future's outcome.
///
/// ```text
/// #[costtrace::tracked(operation = "receipt_analysis", fields(receipt_id))]
/// async fn analyze(receipt_id: &str, job_id: Option<&str>) -> Result<Summary, Error> { ... }
/// ```
#[proc_macro_attribute]
pub fn tracked(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = proc_macro2::TokenStream::from(item);
    match parse::parse(args, item) {
        Ok(tracked) => expand::expand(tracked).into(),
        Err(e) => e.to_compile_error().into(),
    }
}
