//! The README's examples, checked against the code: the plugin of "Write a plugin" is
//! the crate `tests/readme-plugin` and passes the suite through its library; the sample
//! task JSON is accepted by `ta-persist put`; the trait signatures, the boolean words and
//! the active-backend lines are the real ones.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ta_persistence::config::{parse_bool, Config};
use ta_persistence::loader::load_plugin;
use ta_persistence::PersistenceFactory;
use ta_persistence_api::conformance::run_suite;
use ta_persistence_api::DocumentManager;
use ta_persistence_tests::cdylib::{plugin, ta_persist, workspace_root};

fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md reads")
}

fn source(path: &str) -> String {
    std::fs::read_to_string(workspace_root().join(path))
        .unwrap_or_else(|e| panic!("{path} reads: {e}"))
}

/// The text of the section with this heading, up to the next `## ` heading.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has a section {heading:?}"));
    let rest = &text[start + 1..];
    let end = rest[heading.len()..]
        .find("\n## ")
        .map_or(rest.len(), |n| n + heading.len() + 1);
    &rest[..end]
}

/// The contents of the fenced code blocks in `text` whose info string is `info`.
fn code_blocks(text: &str, info: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.split_inclusive('\n') {
        match current.as_mut() {
            None if line.trim_end() == format!("```{info}") => current = Some(String::new()),
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => block.push_str(line),
            None => {}
        }
    }
    blocks
}

/// The contents of the first fenced block (any info string) after `marker`.
fn block_after(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("the README has the marker {marker:?}"));
    let rest = &text[at..];
    let open = rest.find("```").expect("a code block follows the marker");
    let body = &rest[open..];
    let first_line_end = body.find('\n').expect("the fence line ends");
    let body = &body[first_line_end + 1..];
    let close = body.find("\n```").expect("the code block is closed");
    body[..close + 1].to_owned()
}

/// `text` without whitespace and without the trailing commas rustfmt adds to a
/// parameter list it wraps, so a signature compares equal however it is wrapped.
fn without_whitespace(text: &str) -> String {
    let packed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    packed.replace(",)", ")")
}

#[test]
fn the_readme_plugin_is_the_compiled_example_crate_word_for_word() {
    let readme = readme();
    let blocks = code_blocks(section(&readme, "## Write a plugin"), "rust");
    assert_eq!(blocks.len(), 3, "the manager, the export and the test");
    let crate_source = source("tests/readme-plugin/src/lib.rs");
    assert_eq!(
        blocks.join("\n"),
        crate_source,
        "the README's plugin and tests/readme-plugin/src/lib.rs differ: change both"
    );
}

#[test]
fn the_plugin_readmes_show_their_compiled_examples_word_for_word() {
    for (readme, example) in [
        (
            "plugins/memory/README.md",
            "plugins/memory/tests/readme_example.rs",
        ),
        (
            "plugins/files/README.md",
            "plugins/files/tests/readme_example.rs",
        ),
        (
            "plugins/redis/README.md",
            "plugins/redis/examples/readme_example.rs",
        ),
        (
            "plugins/sqlite/README.md",
            "plugins/sqlite/tests/readme_example.rs",
        ),
    ] {
        let text = source(readme);
        let blocks = code_blocks(section(&text, "## Example"), "rust");
        assert_eq!(blocks.len(), 1, "{readme}: one example");
        assert_eq!(
            blocks[0],
            source(example),
            "{readme} and {example} differ: change both"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_plugin_passes_the_suite_through_its_library() {
    let path = plugin("my-store");
    assert!(
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().contains("my_store")),
        "{}",
        path.display()
    );
    let report = run_suite(
        || {
            let path = path.clone();
            async move {
                let (_, manager) = load_plugin(&path, Some("MyStore"), &BTreeMap::new()).unwrap();
                Arc::new(manager) as Arc<dyn DocumentManager>
            }
        },
        None,
    )
    .await;
    assert!(report.is_success(), "{report}");
    assert!(report.passed() >= 35, "{report}");
}

#[test]
fn the_readme_task_json_is_accepted_by_put_and_read_back_by_get() {
    let readme = readme();
    let json = block_after(&readme, "<!-- task json -->");
    let expected: serde_json::Value = serde_json::from_str(&json).expect("the sample is JSON");
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("readme-put-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("task.json");
    std::fs::write(&file, &json).unwrap();
    let library = plugin("ta-plugin-files");
    let run = |args: &[&str]| {
        let mut cmd = Command::new(ta_persist());
        for (name, _) in std::env::vars() {
            if name.starts_with("TA_") {
                cmd.env_remove(name);
            }
        }
        cmd.args(args)
            .env("RUST_LOG", "off")
            .env("TA_PERSISTENCE_MODULE", &library)
            .env("TA_PERSISTENCE_CLASS", "FileTaskPersistenceManager")
            .env("TA_PERSISTENCE_STRICT", "true")
            .env("TA_FILES_DIR", dir.join("store"))
            .output()
            .expect("ta-persist runs")
    };
    let put = run(&["put", file.to_str().unwrap()]);
    assert!(
        put.status.success(),
        "put refused the README's task: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let task_id = expected["task_id"].as_str().unwrap();
    let get = run(&["get", task_id]);
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    let stored: serde_json::Value = serde_json::from_slice(&get.stdout).expect("get prints JSON");
    assert_eq!(stored, expected);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_signatures_are_the_traits_own() {
    let readme = readme();
    for (marker, file) in [
        (
            "<!-- signatures of: plugin-api/src/manager.rs -->",
            "plugin-api/src/manager.rs",
        ),
        (
            "<!-- signatures of: plugin-api/src/document_store.rs -->",
            "plugin-api/src/document_store.rs",
        ),
    ] {
        let block = block_after(&readme, marker);
        let code = without_whitespace(&source(file));
        let mut checked = 0;
        for line in block
            .lines()
            .filter(|l| l.contains("fn ") || l.contains("trait "))
        {
            let signature = line.split("//").next().unwrap_or(line);
            let signature = signature.trim().trim_end_matches(';');
            let signature = signature.trim_end_matches(" {");
            assert!(
                code.contains(&without_whitespace(signature)),
                "{file} has no `{signature}`"
            );
            checked += 1;
        }
        assert!(checked >= 10, "{marker}: only {checked} signatures");
    }
}

#[test]
fn the_readme_lists_exactly_the_boolean_words_the_parser_accepts() {
    let readme = readme();
    let at = readme.find("<!-- boolean words -->").expect("the marker");
    let paragraph = &readme[at..];
    let paragraph = &paragraph[..paragraph.find("\n\n").unwrap_or(paragraph.len())];
    let (yes, no) = paragraph
        .split_once("and `false`")
        .expect("the true words, then the false words");
    let words = |text: &str| -> Vec<String> {
        text.split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| !w.starts_with("TA_"))
            .map(str::to_owned)
            .collect()
    };
    let yes = words(yes);
    let no: Vec<String> = ["false".to_owned()].into_iter().chain(words(no)).collect();
    assert_eq!(yes, ["true", "1", "yes", "on"]);
    assert_eq!(no, ["false", "0", "no", "off"]);
    for word in &yes {
        assert!(parse_bool("X", word).unwrap());
        assert!(parse_bool("X", &format!(" {} ", word.to_uppercase())).unwrap());
    }
    for word in &no {
        assert!(!parse_bool("X", word).unwrap());
    }
    for other in ["", "maybe", "2", "enabled", "y"] {
        assert!(parse_bool("X", other).is_err(), "{other:?} was accepted");
    }
}

#[test]
fn the_readme_shows_the_active_backend_as_it_is_displayed() {
    let readme = readme();
    let lines = block_after(&readme, "<!-- active backend -->");
    let lines: Vec<&str> = lines.lines().collect();
    let built_in = PersistenceFactory::from_config(&Config::default()).unwrap();
    assert_eq!(built_in.active_backend().to_string(), lines[0]);

    let library = plugin("ta-plugin-files");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("readme-active-{}", std::process::id()));
    let config = Config::plugin(&library, "FileTaskPersistenceManager")
        .with_var("TA_FILES_DIR", dir.display().to_string());
    let plugin = PersistenceFactory::from_config(&config).unwrap();
    let shown = plugin.active_backend().to_string();
    let (readme_head, _) = lines[1].split_once(" from ").unwrap();
    assert_eq!(shown, format!("{readme_head} from {}", library.display()));

    let broken = Config::plugin(dir.join("missing.so"), "FileTaskPersistenceManager");
    let fallback = PersistenceFactory::from_config(&broken).unwrap();
    let (readme_head, _) = lines[2].split_once("<reason>").unwrap();
    assert!(
        fallback
            .active_backend()
            .to_string()
            .starts_with(readme_head),
        "{}",
        fallback.active_backend()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
