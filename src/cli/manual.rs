//! The manual beyond each option: files, environment, exit status, signals, where the docs
//! are. One text for `belroute --help` and for the man pages the Debian package installs.

/// The manual's last sections, for `belroute --help` (after the options) and the man page.
const MANUAL: &[(&str, &[(&str, &str)])] = &[
    (
        "Files (from the Debian package: in /etc/belroute and /var/lib/belroute)",
        &[
            (
                "./belroute.yaml",
                "Server settings: plugins, hooks auth, admin token, subscriptions. Read at start, with the ${VARIABLES} it names: restart to apply a change.",
            ),
            (
                "./rules/NAME.yaml",
                "Rule set NAME, served at /hooks/NAME and reloaded when saved; NAME.test.yaml holds its tests.",
            ),
            (
                "./belroute.db",
                "The SQLite call log (the default --database sqlite://belroute.db).",
            ),
        ],
    ),
    (
        "Environment",
        &[
            (
                "BELROUTE_RULES, BELROUTE_CONFIG, BELROUTE_DATABASE, BELROUTE_LISTEN, BELROUTE_WORKERS, BELROUTE_LOG_FORMAT",
                "Defaults for --rules, --config, --database (else DATABASE_URL), --listen, --workers and --log-format.",
            ),
            (
                "BELROUTE_LOG (else RUST_LOG)",
                "The log filter, e.g. info,belroute=debug.",
            ),
            ("NO_COLOR", "No colours in the log."),
        ],
    ),
    (
        "Exit status",
        &[
            ("0", "All is well."),
            (
                "1",
                "check found a problem, a test failed, a rule set named does not exist, init would write over a file, or replay --fail-on-change saw a change.",
            ),
            (
                "2",
                "A command line or setup that cannot work: an unknown flag, a bad belroute.yaml, no rules directory, a database that cannot be reached, the port in use.",
            ),
        ],
    ),
    (
        "Signals (serve)",
        &[
            (
                "SIGHUP",
                "Rescans the rules directory at once (systemctl reload belroute).",
            ),
            (
                "SIGTERM",
                "Finishes the requests in flight, writes every queued call record, exits.",
            ),
        ],
    ),
    (
        "See also",
        &[(
            "/usr/share/doc/belroute",
            "README.md, operators.md (running it, belroute.yaml, the service), rules.md, plugins.md, api.md, subscriptions.md, nl/snelstart.md; docs/ in the source.",
        )],
    ),
];

/// [`MANUAL`] as `--help` prints it: each description wrapped under its term.
pub fn help_text() -> String {
    let mut text = String::new();
    for (i, (title, entries)) in MANUAL.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(title);
        text.push_str(":\n");
        for (term, description) in *entries {
            text.push_str(&format!("  {term}\n"));
            let mut line = String::new();
            for word in description.split_whitespace() {
                if !line.is_empty() && line.len() + word.len() > 80 {
                    text.push_str(&format!("      {line}\n"));
                    line.clear();
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
            text.push_str(&format!("      {line}\n"));
        }
    }
    text.trim_end().to_string()
}

/// Writes belroute.1 (clap's sections, then [`MANUAL`]'s as man sections) and one page per
/// visible command (belroute-serve.1, …) into `dir`. The version is the package's, without the
/// git revision, so the pages change only when the command line does.
pub fn write_manpages(top: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    use clap_mangen::roff::{Roff, bold, roman};
    let mut top = top
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true);
    top.build();
    // Once built, each command's display name is belroute-COMMAND.
    for sub in top.get_subcommands().filter(|c| !c.is_hide_set()) {
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone().version(env!("CARGO_PKG_VERSION"))).render(&mut page)?;
        std::fs::write(dir.join(format!("belroute-{}.1", sub.get_name())), page)?;
    }
    let man = clap_mangen::Man::new(top);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    let mut roff = Roff::new();
    for (title, entries) in MANUAL {
        let title = title.split(" (").next().unwrap_or(title).to_uppercase();
        roff.control("SH", [title.as_str()]);
        for (term, description) in *entries {
            roff.control("TP", []);
            roff.text([bold(*term)]);
            roff.text([roman(*description)]);
        }
    }
    roff.to_writer(&mut page)?;
    man.render_version_section(&mut page)?;
    std::fs::write(dir.join("belroute.1"), page)
}
