//! What refine-ls knows about languages, in one place: the language id of a file path, the
//! tree-sitter grammar of a language id, and which syntax nodes are interface items (whose
//! signatures a revision may not change unasked).

use tree_sitter::Language;

/// A language id for a file path, from its extension (`text` when unknown).
pub fn language_for_path(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "rs" => "rust",
        "py" | "pyi" => "python",
        "js" | "mjs" | "cjs" | "jsx" => "javascript",
        "ts" | "mts" | "cts" => "typescript",
        "tsx" => "typescriptreact",
        "go" => "go",
        "c" | "h" => "c",
        "cc" | "cpp" | "cxx" | "hpp" | "hh" => "cpp",
        "java" => "java",
        "kt" | "kts" => "kotlin",
        "rb" => "ruby",
        "lua" => "lua",
        "sh" | "bash" => "shellscript",
        "cs" => "csharp",
        "swift" => "swift",
        "php" => "php",
        _ => "text",
    }
}

/// The grammar for a language id, when refine-ls was built with it.
pub fn grammar(language: &str) -> Option<Language> {
    match language {
        #[cfg(feature = "lang-rust")]
        "rust" => Some(tree_sitter_rust::LANGUAGE.into()),
        #[cfg(feature = "lang-python")]
        "python" => Some(tree_sitter_python::LANGUAGE.into()),
        #[cfg(feature = "lang-javascript")]
        "javascript" | "javascriptreact" => Some(tree_sitter_javascript::LANGUAGE.into()),
        #[cfg(feature = "lang-typescript")]
        "typescript" => Some(tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into()),
        #[cfg(feature = "lang-typescript")]
        "typescriptreact" => Some(tree_sitter_typescript::LANGUAGE_TSX.into()),
        #[cfg(feature = "lang-go")]
        "go" => Some(tree_sitter_go::LANGUAGE.into()),
        _ => None,
    }
}

/// Node kinds whose header is an interface, per language, and whether the whole node counts
/// (types) or only the part before the body (functions, classes).
pub fn interface_kinds(language: &str) -> &'static [(&'static str, bool)] {
    match language {
        "rust" => &[
            ("function_item", false),
            ("function_signature_item", true),
            ("struct_item", true),
            ("enum_item", true),
            ("trait_item", false),
            ("type_item", true),
        ],
        "python" => &[("function_definition", false), ("class_definition", false)],
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" => &[
            ("function_declaration", false),
            ("generator_function_declaration", false),
            ("method_definition", false),
            ("class_declaration", false),
            ("interface_declaration", true),
            ("type_alias_declaration", true),
        ],
        "go" => &[
            ("function_declaration", false),
            ("method_declaration", false),
            ("type_declaration", true),
        ],
        _ => &[],
    }
}

/// Interface items that hold other interface items (methods), so their insides are walked.
pub const INTERFACE_CONTAINERS: &[&str] = &["trait_item", "class_definition", "class_declaration"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_language_ids() {
        assert_eq!(language_for_path("src/a.rs"), "rust");
        assert_eq!(language_for_path("x/B.PY"), "python");
        assert_eq!(language_for_path("c.tsx"), "typescriptreact");
        assert_eq!(language_for_path("Makefile"), "text");
    }
}
