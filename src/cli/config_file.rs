//! `--config FILE`: TOML keys are long flag names. A value is used only where
//! neither the command line nor the environment set the flag, so the file
//! becomes extra `--key=value` arguments for clap and the process
//! environment is never written.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::Value;

/// The arguments to parse, the file's flags appended.
pub struct Filled {
    pub args: Vec<OsString>,
    /// Which flags came from which file, for a usage error about them.
    pub note: Option<String>,
}

/// Appends the config file's flags for the subcommand `args` runs.
/// Without a file, or when the first parse cannot tell the subcommand,
/// `args` come back unchanged and the real parse reports what it finds.
pub fn fill(cmd: &Command, mut args: Vec<OsString>) -> anyhow::Result<Filled> {
    let mut cmd = cmd.clone();
    // Globals reach the subcommands, and `help` exists, only once built.
    cmd.build();
    // A flag required by clap may be only in the file: tolerate its absence.
    let first = cmd.clone().ignore_errors(true).try_get_matches_from(&args);
    let Ok(matches) = first else {
        // --help or --version: nothing to fill.
        return Ok(Filled { args, note: None });
    };
    let Some((name, sub_matches)) = matches.subcommand() else {
        return Ok(Filled { args, note: None });
    };
    // `--config` is global: given before or after the subcommand, it is here.
    let Ok(Some(path)) = sub_matches.try_get_one::<PathBuf>("config") else {
        return Ok(Filled { args, note: None });
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let flags = toml::from_str(&text)
        .map_err(|e| e.to_string())
        .and_then(|table| file_flags(&cmd, name, sub_matches, &table))
        .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?;
    let note = (!flags.is_empty()).then(|| {
        let mut keys: Vec<&str> = flags.iter().filter_map(|f| f.split('=').next()).collect();
        keys.dedup();
        format!("config file {} set {}", path.display(), keys.join(" "))
    });
    args.extend(flags.into_iter().map(OsString::from));
    Ok(Filled { args, note })
}

/// The `--key=value` arguments the file adds to subcommand `running`, whose
/// first-pass matches are `matches`. Checks every key of the file, not only
/// those `running` reads, so a typo is found on the first run.
fn file_flags(
    cmd: &Command,
    running: &str,
    matches: &ArgMatches,
    table: &toml::Table,
) -> Result<Vec<String>, String> {
    // `help` is clap's own subcommand: it has no flags to set.
    let subs: Vec<&Command> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    let sub = |name: &str| subs.iter().copied().find(|s| s.get_name() == name);
    for (key, value) in table {
        match (sub(key), value) {
            (Some(s), Value::Table(t)) => {
                if let Some(k) = t.keys().find(|k| flag(s, k).is_none()) {
                    return Err(format!("[{key}] unknown key {k:?}"));
                }
            }
            _ if subs.iter().any(|s| flag(s, key).is_some()) => {}
            _ => return Err(format!("unknown key {key:?}")),
        }
    }
    let Some(running_cmd) = sub(running) else {
        return Ok(Vec::new());
    };
    let own = match table.get(running) {
        Some(Value::Table(t)) => Some(t),
        _ => None,
    };
    // The subcommand's own table wins over the top level.
    let values: BTreeMap<&String, &Value> = table.iter().chain(own.into_iter().flatten()).collect();
    let mut out = Vec::new();
    for (key, value) in values {
        let Some(arg) = flag(running_cmd, key) else {
            continue;
        };
        let unset = matches!(
            matches.value_source(arg.get_id().as_str()),
            None | Some(ValueSource::DefaultValue)
        );
        if unset {
            let place = if own.is_some_and(|t| t.contains_key(key)) {
                format!("[{running}] ")
            } else {
                String::new()
            };
            out.extend(arguments(arg, key, value).map_err(|e| format!("{place}{key:?}: {e}"))?);
        }
    }
    Ok(out)
}

/// The flag a file key names: its long name. `config` is not one: a file
/// does not name another file.
fn flag<'c>(cmd: &'c Command, key: &str) -> Option<&'c Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(key)
            && a.get_id() != "config"
            && !matches!(
                a.get_action(),
                ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
            )
    })
}

/// One `--key=value` per value (arrays repeat the flag); `true` for a
/// switch is the bare `--key`, `false` nothing.
fn arguments(arg: &Arg, key: &str, value: &Value) -> Result<Vec<String>, String> {
    let items = match value {
        Value::Array(items) => items.iter().collect(),
        v => vec![v],
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::Boolean(true) if !arg.get_action().takes_values() => {
                out.push(format!("--{key}"))
            }
            Value::Boolean(false) if !arg.get_action().takes_values() => {}
            _ if !arg.get_action().takes_values() => return Err("expected true or false".into()),
            Value::String(s) => out.push(format!("--{key}={s}")),
            Value::Array(_) | Value::Table(_) => {
                return Err("expected a value or a list of values".into())
            }
            other => out.push(format!("--{key}={other}")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::Path;
    use std::time::Duration;

    use clap::{CommandFactory, Parser};

    use super::*;
    use crate::cli::{Cli, Command as Sub};

    /// Parses `args` with `toml` as the config file; the result or the error text.
    fn parse(toml: &str, args: &[&str]) -> Result<Cli, String> {
        let mut file = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        file.write_all(toml.as_bytes()).map_err(|e| e.to_string())?;
        let mut argv: Vec<OsString> = vec!["metricstream".into()];
        argv.extend(args.iter().map(OsString::from));
        argv.push("--config".into());
        argv.push(file.path().into());
        let filled = fill(&Cli::command(), argv).map_err(|e| format!("{e:#}"))?;
        Cli::try_parse_from(filled.args).map_err(|e| e.to_string())
    }

    fn serve(toml: &str, args: &[&str]) -> crate::cli::ServeArgs {
        match parse(toml, &[&["serve"], args].concat()) {
            Ok(Cli {
                command: Sub::Serve(s),
                ..
            }) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn flag_beats_file_beats_default() {
        let toml =
            "data-dir = \"/top\"\npartitions = 8\n[serve]\nack = \"accepted\"\ntopic = \"t\"";
        let s = serve(toml, &["--partitions", "2"]);
        assert_eq!(s.partitions, 2, "the command line wins");
        assert_eq!(s.queue.data_dir, Path::new("/top"), "the top level applies");
        assert_eq!(s.ack, metricstream::queue::AckMode::Accepted);
        assert_eq!(s.queue.topic, "t");
        assert_eq!(s.rate_limit, 10_000, "the default stays");
        let s = serve("data-dir = \"/top\"\n[serve]\ndata-dir = \"/own\"", &[]);
        assert_eq!(s.queue.data_dir, Path::new("/own"), "the table wins");
    }

    #[test]
    fn arrays_repeat_the_flag() {
        let s = serve(
            "api-key = [\"a:b\", \"c:d\"]\nkafka-property = [\"bootstrap.servers=a:1,b:2\", \"acks=1\"]",
            &[],
        );
        let names: Vec<_> = s.api_keys.iter().map(|k| format!("{k:?}")).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        let x: Vec<_> = s
            .queue
            .kafka_properties
            .iter()
            .map(|p| (p.key.as_str(), p.value.as_str()))
            .collect();
        assert_eq!(x, [("bootstrap.servers", "a:1,b:2"), ("acks", "1")]);
        let s = serve("kafka-property = [\"acks=1\"]", &["-X", "linger.ms=9"]);
        assert_eq!(s.queue.kafka_properties.len(), 1, "flags replace the list");
        assert_eq!(s.queue.kafka_properties[0].key, "linger.ms");
    }

    #[test]
    fn switches_numbers_and_durations() {
        let s = serve(
            "[serve]\ncreate-topic = true\nmax-body = 1024\nidle-timeout = \"2s\"",
            &[],
        );
        assert!(s.create_topic);
        assert_eq!(s.max_body, 1024);
        assert_eq!(s.idle_timeout, Duration::from_secs(2));
        assert!(!serve("create-topic = false", &[]).create_topic);
        let e = parse("create-topic = \"yes\"", &["serve"]).unwrap_err();
        assert!(
            e.contains("\"create-topic\": expected true or false"),
            "{e}"
        );
    }

    #[test]
    fn a_required_flag_may_come_from_the_file() {
        let cli = parse("[consume]\ngroup = \"g\"", &["consume"]).unwrap();
        let Sub::Consume(c) = cli.command else {
            panic!()
        };
        assert_eq!(c.group, "g");
        assert!(
            parse("", &["consume"]).is_err(),
            "--group is still required"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("[serve]\ndata-dri = \"/d\"", &["serve"]).unwrap_err();
        assert!(e.ends_with("[serve] unknown key \"data-dri\""), "{e}");
        assert!(e.starts_with("config file "), "{e}");
        let e = parse("colour = true", &["serve"]).unwrap_err();
        assert!(e.ends_with(": unknown key \"colour\""), "{e}");
        // A typo in another subcommand's table is found too.
        let e = parse("[consume]\ngrup = \"g\"", &["serve"]).unwrap_err();
        assert!(e.ends_with("[consume] unknown key \"grup\""), "{e}");
        for key in ["config = \"x\"", "help = true", "[help]"] {
            assert!(parse(key, &["serve"]).is_err(), "{key} accepted");
        }
    }

    #[test]
    fn top_level_keys_of_another_subcommand_are_ignored() {
        let toml = "group = \"g\"\nlisten = \"127.0.0.1:9\"\nurl = \"http://h/metrics\"";
        assert_eq!(serve(toml, &[]).listen.to_string(), "127.0.0.1:9");
        let cli = parse(toml, &["consume"]).unwrap();
        assert!(matches!(cli.command, Sub::Consume(c) if c.group == "g"));
    }

    #[test]
    fn bench_table() {
        let cli = parse(
            "url = \"http://h:1/metrics\"\n[bench]\nkeep-alive = true\nclients = 3",
            &["bench"],
        )
        .unwrap();
        let Sub::Bench(b) = cli.command else { panic!() };
        assert!(b.keep_alive);
        assert_eq!(b.clients, 3);
        assert_eq!(b.url, "http://h:1/metrics");
    }

    #[test]
    fn global_flags_from_the_file() {
        use crate::cli::LogFormat;
        let cli = parse("log-format = \"json\"", &["serve"]).unwrap();
        assert_eq!(cli.log_format, LogFormat::Json);
        for args in [
            &["--log-format", "text", "serve"][..],
            &["serve", "--log-format", "text"],
        ] {
            let cli = parse("log-format = \"json\"", args).unwrap();
            assert_eq!(cli.log_format, LogFormat::Text, "{args:?}");
        }
    }

    #[test]
    fn no_file_no_change() {
        let args: Vec<OsString> = ["metricstream", "serve"].map(OsString::from).into();
        let filled = fill(&Cli::command(), args.clone()).unwrap();
        assert_eq!(filled.args, args);
        assert!(filled.note.is_none());
        let e = parse("[serve\n", &["serve"]).unwrap_err();
        assert!(e.starts_with("config file "), "{e}");
        let missing = fill(
            &Cli::command(),
            ["metricstream", "serve", "--config", "/nonexistent/x.toml"]
                .map(OsString::from)
                .into(),
        );
        assert!(missing.is_err());
    }
}
