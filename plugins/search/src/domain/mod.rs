//! The read model's pure rules, natively tested: tokenizing and ranking
//! (`text`), splitting payments between sellers (`allocate`), reading the
//! endpoints' query strings (`query`) and what events mean for the views
//! (`views`). No host calls here.
pub mod allocate;
pub mod query;
pub mod text;
pub mod views;
