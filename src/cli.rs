//! Command-line definition (clap derive). Parsing only: no Docker calls, no output.
//!
//! Values are parsed into types here where clap can report them as usage errors (exit 2);
//! checks that the CLI contract classes as invalid input (ports out of range, a malformed
//! `--label`) happen in `interlock::input` and exit 4.
//!
//! Global options go before or after the command, as in the docker CLI. clap checks
//! `requires` and `conflicts_with` separately on each command level, so a global option given
//! before the command and its companion given after it are never seen together (clap issue
//! 1546): `--config-file F pin-proxy --out X` was refused, `-q status -v` accepted. The
//! relations between global options are therefore not declared to clap; [`Cli::parse_args`]
//! checks them once, on the merged values, wherever each option stood.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

/// Automates the Interlock (Docker Enterprise Layer 7 routing) host-mode runbook, safely.
///
/// Reads the config mounted at /config.toml on the Interlock core service, edits it, creates
/// the next versioned config, rotates it onto the core with automatic rollback, and makes the
/// proxy service match, the known-bug fixup included. Every change is shown as a plan first.
#[derive(Debug, Parser)]
#[command(
    name = "interlockctl",
    version,
    long_version = long_version(),
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Whether a command line asks for JSON output (`-o json`, `--output json`, `-ojson`,
/// `-o=json`, `--output=json`), read from the words themselves: for a line clap refused,
/// whose usage error is then a JSON document too.
pub fn asks_for_json(args: &[OsString]) -> bool {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map_while(|arg| arg.to_str())
        .take_while(|word| *word != "--")
        .collect();
    words.iter().enumerate().any(|(i, word)| match *word {
        "-o" | "--output" => words.get(i + 1) == Some(&"json"),
        other => matches!(other, "-ojson" | "-o=json" | "--output=json"),
    })
}

/// The subcommand a command line names (`cluster add`), as far as its words tell; empty
/// when it names none.
pub fn named_command(args: &[OsString]) -> String {
    let mut command = Cli::command();
    let mut names = Vec::new();
    for word in args.iter().skip(1).filter_map(|arg| arg.to_str()) {
        if let Some(subcommand) = command.find_subcommand(word).cloned() {
            names.push(subcommand.get_name().to_owned());
            command = subcommand;
        }
    }
    names.join(" ")
}

impl Cli {
    /// Parses the command line like clap, then checks the relations between global options
    /// on their merged values; an error renders like clap's own, with the command's usage.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut command = Cli::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli =
            Cli::from_arg_matches(&matches).map_err(|error| error.format(&mut command))?;
        // A pipeline's INTERLOCKCTL_OUTPUT=json is for its reports: a script or a page on
        // stdout stays what it is.
        if matches.value_source("output") == Some(ValueSource::EnvVariable)
            && cli.global.prints_a_document(&cli.command).is_some()
        {
            cli.global.output = OutputFormat::Text;
        }
        match cli.global.misuse(&cli.command) {
            None => Ok(cli),
            Some((kind, message)) => {
                let name = matches.subcommand_name().unwrap_or_default();
                Err(match command.find_subcommand_mut(name) {
                    Some(subcommand) => subcommand.error(kind, message),
                    None => command.error(kind, message),
                })
            }
        }
    }
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global Options")]
pub struct GlobalArgs {
    /// Docker engine to talk to (unix:///path or tcp://host:port) [env: DOCKER_HOST]
    #[arg(short = 'H', long, global = true, value_name = "URL")]
    pub host: Option<String>,
    /// Docker context to use instead of the current one [env: DOCKER_CONTEXT]
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// Use TLS; implied by --tlsverify
    #[arg(long, global = true)]
    pub tls: bool,
    /// Use TLS and verify the engine's certificate [env: DOCKER_TLS_VERIFY]
    #[arg(long, global = true)]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA [default: $DOCKER_CERT_PATH/ca.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// TLS client certificate [default: $DOCKER_CERT_PATH/cert.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// TLS client key [default: $DOCKER_CERT_PATH/key.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// Name of the Interlock core service
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        default_value = "ucp-interlock",
        env = "INTERLOCKCTL_SERVICE"
    )]
    pub service: String,
    /// Which [Extensions.NAME] to work on [default: the only one, else `default`]
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        env = "INTERLOCKCTL_EXTENSION"
    )]
    pub extension: Option<String>,
    /// Output format: human text on stderr/stdout, or one JSON document on stdout
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        default_value_t = OutputFormat::Text,
        env = "INTERLOCKCTL_OUTPUT"
    )]
    pub output: OutputFormat,
    /// Apply without asking for confirmation (for CI)
    #[arg(short = 'y', long, global = true)]
    pub yes: bool,
    /// Show the plan and change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Change nothing; exit 3 if changes are pending, 0 if not
    #[arg(long, global = true)]
    pub check: bool,
    /// Plan, change nothing, and write the plan to FILE (owner-only: it holds the config's
    /// secrets) for `interlockctl apply --plan FILE`
    #[arg(long, global = true, value_name = "FILE")]
    pub plan_out: Option<PathBuf>,
    /// Where to save the previous config and service specs before changing anything
    /// [default: $XDG_STATE_HOME/interlockctl/backups]
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "INTERLOCKCTL_BACKUP_DIR"
    )]
    pub backup_dir: Option<PathBuf>,
    /// Show secret values (AdminPass, keys, tokens) in diffs and JSON instead of <redacted>
    #[arg(long, global = true)]
    pub show_secrets: bool,
    /// Proceed despite preflight refusals a user can knowingly accept (too few eligible
    /// nodes, a port in use); never despite missing objects or an update in progress
    #[arg(long, global = true)]
    pub force: bool,
    /// How long to wait for the swarm to converge after each update
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        default_value = "5m",
        value_parser = parse_duration,
        env = "INTERLOCKCTL_TIMEOUT"
    )]
    pub timeout: Duration,
    /// Never draw progress bars: each change of a wait is one line on stderr
    #[arg(
        long,
        global = true,
        env = "INTERLOCKCTL_NO_PROGRESS",
        value_parser = BoolishValueParser::new()
    )]
    pub no_progress: bool,
    /// Print only errors and the requested data
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Print more detail: the engine used, each config created and each service update sent
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// When to colour: auto honours NO_COLOR, CLICOLOR, CLICOLOR_FORCE, TERM and terminals
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Offline: edit this TOML file (`-` = stdin) instead of the live config object
    #[arg(long, global = true, value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Write here instead of stdout: offline, the edited TOML; for `man`, a directory that
    /// gets one page per command
    #[arg(long, global = true, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

impl GlobalArgs {
    /// The command's name when it prints a script or a page on stdout instead of a report.
    fn prints_a_document(&self, command: &Command) -> Option<&'static str> {
        match command {
            Command::Completions(_) => Some("completions"),
            Command::Man if self.out.is_none() => Some("man"),
            _ => None,
        }
    }

    /// The first pair of global options that exclude each other, or an option given without
    /// the one it needs (with `command`); `None` when the combination is valid.
    fn misuse(&self, command: &Command) -> Option<(ErrorKind, String)> {
        let exclusive = [
            (
                self.context.is_some(),
                "--context",
                self.host.is_some(),
                "--host",
            ),
            (self.check, "--check", self.dry_run, "--dry-run"),
            (self.quiet, "--quiet", self.verbose, "--verbose"),
        ];
        if let Some((_, option, _, other)) = exclusive.iter().find(|(a, _, b, _)| *a && *b) {
            return Some((
                ErrorKind::ArgumentConflict,
                format!("the argument '{option}' cannot be used with '{other}'"),
            ));
        }
        if let Some(name) = self.prints_a_document(command)
            && self.output == OutputFormat::Json
        {
            return Some((
                ErrorKind::ArgumentConflict,
                format!(
                    "the argument '--output json' cannot be used with '{name}': it prints a \
                     script or page on stdout, not a report"
                ),
            ));
        }
        if self.plan_out.is_some() {
            let refused = if self.config_file.is_some() {
                Some("'--config-file': offline runs write the edited TOML instead (`--out`)")
            } else if command.words().is_none() {
                Some("a command that changes nothing")
            } else if matches!(command, Command::Apply(ApplyArgs { plan: Some(_), .. })) {
                Some("'apply --plan': that plan is saved already")
            } else {
                None
            };
            if let Some(refused) = refused {
                return Some((
                    ErrorKind::ArgumentConflict,
                    format!("the argument '--plan-out <FILE>' cannot be used with {refused}"),
                ));
            }
        }
        if self.out.is_some() && self.config_file.is_none() && !matches!(command, Command::Man) {
            return Some((
                ErrorKind::MissingRequiredArgument,
                "'--out <PATH>' needs '--config-file <PATH>': it is where offline mode writes \
                 the edited file; a live run changes the config object instead"
                    .to_owned(),
            ));
        }
        None
    }
}

/// The output format of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    Text,
    /// One JSON document on stdout (schema_version 1).
    Json,
}

/// Whether to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal unless NO_COLOR is set.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pin the proxy replicas to nodes with a label (runbook part 1)
    ///
    /// Sets ProxyConstraints = ["node.labels.KEY==VALUE"] and ProxyReplicas, optionally the
    /// extension's Constraints, rotates the config onto the core service, and makes the proxy
    /// service match (the Interlock core does not apply these to an existing proxy).
    PinProxy(PinProxyArgs),
    /// Publish the proxy in host mode on the given ports (runbook part 2)
    ///
    /// Sets PublishMode = "host", PublishedPort and PublishedSSLPort, rotates the config onto
    /// the core together with publishing the core's port 8080 in host mode, and makes the
    /// proxy's published ports match.
    HostMode(HostModeArgs),
    /// The whole runbook in one run: pin the proxy and publish it in host mode
    ///
    /// Makes the edits of pin-proxy and host-mode together: one new config, one update of
    /// the core (config, its port 8080 in host mode) and one of the proxy (constraints,
    /// replicas, host ports), so the core restarts once; verified as host-mode verifies. On
    /// a swarm already pinned or in host mode, does only what is missing.
    Migrate(MigrateArgs),
    /// Print the live config TOML on stdout and its name on stderr
    Show,
    /// Roll out a whole desired config from a TOML file
    Apply(ApplyArgs),
    /// Show the config, every proxy's placement, ports, networks and updates, and findings
    ///
    /// The doctor: for every extension, its proxy's placement, ports, the networks it is
    /// attached to, its spec version and last update, where its tasks run and why any do not,
    /// and drift from the config. A missing proxy, a core without a config, a config that is
    /// not valid TOML or lacks ProxyReplicas are reported as findings, not refused. Exits 1
    /// when a finding is an error.
    Status(StatusArgs),
    /// Put the core back on its previous config and make the proxy match it again
    Rollback(RollbackArgs),
    /// Upgrade a customized Interlock: core, extensions and proxies to another version
    ///
    /// Moves the image of the core, of every extension service and of every proxy (service
    /// clusters included) to the same image with tag VERSION (and, with --repository, another
    /// org), and every Image, ProxyImage and ConfigImage key of the config with them: the new
    /// config goes onto the core in the same update as its image, then the extensions and
    /// proxies follow. Verifies that every task runs its new image and that the core puts no
    /// old image back; a failed upgrade puts back the images and the config, `rollback`
    /// returns to the versions before it.
    Upgrade(UpgradeArgs),
    /// List the core's config lineage: name, created, operation, parent, digest
    History,
    /// Delete old configs of the lineage (never the current one or a rollback target)
    Prune(PruneArgs),
    /// Print the completion script for a shell on stdout
    ///
    /// Save it where the shell looks for completions: for bash as
    /// ~/.local/share/bash-completion/completions/interlockctl, for zsh as _interlockctl in a
    /// directory of $fpath, for fish as ~/.config/fish/completions/interlockctl.fish;
    /// PowerShell and elvish run it from their profile.
    Completions(CompletionsArgs),
    /// Print the man page on stdout, or write one per command into the `--out` directory
    ///
    /// `interlockctl man | man -l -` reads it at once; `interlockctl man --out DIR` writes
    /// interlockctl.1 and interlockctl-COMMAND.1 into DIR (e.g. ~/.local/share/man/man1).
    Man,
    /// Check com.docker.lb.* service labels, on the swarm or in stack files
    #[command(subcommand)]
    Labels(LabelsCommand),
    /// Lint or fix a stack file for host-mode Interlock routing
    #[command(subcommand)]
    Stack(StackCommand),
    /// Add or remove a service cluster: an extension with its own proxy, nodes and ports
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

impl Command {
    /// A changing command as the words of its command line, which parse back to the same
    /// command (a saved plan keeps them); `None` for a command that changes nothing. `apply
    /// FILE` becomes `apply -`: its plan keeps the file's text.
    pub fn words(&self) -> Option<Vec<String>> {
        let mut words: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| words.extend(items.iter().map(|w| (*w).to_owned()));
        match self {
            Command::PinProxy(args) => {
                push(&["pin-proxy"]);
                args.push_words(&mut push);
            }
            Command::HostMode(args) => {
                push(&["host-mode"]);
                args.push_words(&mut push);
            }
            Command::Migrate(args) => {
                push(&["migrate"]);
                args.pin.push_words(&mut push);
                args.ports.push_words(&mut push);
            }
            Command::Apply(ApplyArgs { plan: None, .. }) => push(&["apply", "-"]),
            Command::Rollback(args) => {
                push(&["rollback"]);
                if let Some(to) = &args.to {
                    push(&["--to", to]);
                }
            }
            Command::Cluster(ClusterCommand::Add(args)) => {
                push(&["cluster", "add", &args.name, "--label", &args.label]);
                push(&[
                    "--http",
                    &args.http.to_string(),
                    "--https",
                    &args.https.to_string(),
                ]);
                if let Some(replicas) = args.replicas {
                    push(&["--replicas", &replicas.to_string()]);
                }
                if let Some(from) = &args.from {
                    push(&["--from", from]);
                }
            }
            Command::Cluster(ClusterCommand::Remove(args)) => {
                push(&["cluster", "remove", &args.name]);
            }
            Command::Upgrade(args) => {
                push(&["upgrade", "--to", &args.version]);
                if let Some(org) = &args.repository {
                    push(&["--repository", org]);
                }
            }
            _ => return None,
        }
        Some(words)
    }
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Send one HTTP request to each proxy node's published HTTP port, on the node's own
    /// address, and report the answer and its time
    #[arg(long)]
    pub probe: bool,
}

/// The `cluster` subcommands.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Add a service cluster, copied from an existing extension
    ///
    /// Adds [Extensions.NAME] as a copy of --from (default: the only extension, else
    /// `default`) with ServiceName = "ucp-interlock-extension-NAME", ProxyServiceName =
    /// "ucp-interlock-proxy-NAME", ServiceCluster = "NAME", ProxyConstraints on the node
    /// label, ProxyReplicas and host-mode ports; rotates the config onto the core, waits for
    /// the core to create the new proxy, and verifies it. Refuses a name, a service name, a
    /// ServiceCluster or a port another extension uses.
    Add(ClusterAddArgs),
    /// Remove a service cluster and the services only it named
    ///
    /// Removes [Extensions.NAME] (never the last extension), rotates the config onto the
    /// core, then removes the cluster's proxy and extension services, which Interlock
    /// itself leaves running.
    Remove(ClusterRemoveArgs),
}

/// Arguments of `cluster add`.
#[derive(Debug, Args)]
pub struct ClusterAddArgs {
    /// The cluster's name: [Extensions.NAME], ServiceCluster, and its services' suffix
    pub name: String,
    /// Node label that marks the cluster's proxy nodes, as KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: String,
    /// Published HTTP port of the cluster's proxy (host mode)
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub http: i64,
    /// Published HTTPS port of the cluster's proxy (host mode)
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub https: i64,
    /// Proxy replicas [default: the number of Ready, Active nodes with the label]
    #[arg(long, value_name = "N")]
    pub replicas: Option<u64>,
    /// The extension to copy [default: --extension, else the only one, else `default`]
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
}

/// Arguments of `cluster remove`.
#[derive(Debug, Args)]
pub struct ClusterRemoveArgs {
    /// The cluster ([Extensions.NAME]) to remove
    pub name: String,
}

/// Arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `labels` subcommands.
#[derive(Debug, Subcommand)]
pub enum LabelsCommand {
    /// Check every com.docker.lb.* label; exit 4 if any is invalid
    ///
    /// One grammar per label; characters that would break or inject into the proxy's
    /// nginx.conf (`;`, braces, quotes, `$`, `#`, whitespace, control characters) are always
    /// errors; an unknown key names the nearest known one. Live, it checks every service
    /// (or those named) and compares `network` and `service_cluster` with the swarm and the
    /// live Interlock config; with `--stack` it checks stack files offline, before
    /// `docker stack deploy`.
    Check(LabelsCheckArgs),
    /// Watch the swarm: report (and with --reject, undo) invalid labels as they arrive
    ///
    /// Checks every service as `labels check` does, then follows the engine's service events
    /// and checks each service created or updated, within milliseconds: usually before the
    /// Interlock core renders it (it polls every PollInterval, 3s by default). One line per
    /// finding or action on stdout; with `-o json`, one JSON object per line, each with its
    /// `time` and `kind`. A dropped event stream is reopened with backoff and what changed
    /// meanwhile is checked. Also warns when a proxy's networks grow past the doctor's
    /// threshold. Runs until Ctrl-C or SIGTERM, then exits 0 once the action under way ended.
    Watch(LabelsWatchArgs),
}

/// Arguments of `labels watch`.
#[derive(Debug, Args)]
pub struct LabelsWatchArgs {
    /// Put back the routing labels of a service with invalid ones: those of its previous
    /// spec when valid, else none (only the service's labels change; tasks stay)
    #[arg(long)]
    pub reject: bool,
    /// POST each service's findings as JSON, with a readable `text`, to this http(s) URL
    /// (repeatable)
    #[arg(long = "notify", value_name = "URL")]
    pub notify: Vec<String>,
    /// How long one notification try may take (3 tries at most)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub notify_timeout: Duration,
}

/// Arguments of `labels check`.
#[derive(Debug, Args)]
pub struct LabelsCheckArgs {
    /// Services to check [default: all]
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Check this compose/stack file instead of the swarm (`-` = stdin; repeatable)
    #[arg(long = "stack", value_name = "FILE")]
    pub stacks: Vec<PathBuf>,
}

/// `stack` subcommands.
#[derive(Debug, Subcommand)]
pub enum StackCommand {
    /// Find what works against host-mode routing in a stack file; exit 4 on errors
    ///
    /// Networks Interlock attaches to the proxy (the stack's own, and `<stack>_default`),
    /// `com.docker.lb.network` while the proxy is in host mode, routed services without a
    /// host-mode port for `com.docker.lb.port`, a network `name:` below version 3.5, and
    /// every finding of `labels check`.
    Lint(StackLintArgs),
    /// Rewrite a stack file into the form that works in host mode; show the diff
    ///
    /// Host-mode port, the external `bridge` network instead of networks only the proxy
    /// would use, no `com.docker.lb.network`, version 3.5 or later. Comments, key order and
    /// untouched lines stay. Prints the diff; writes the file only with `--write`.
    Fix(StackFixArgs),
}

/// How the Interlock proxy publishes its ports, for `stack lint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyMode {
    /// Host mode: the proxy reaches services through their host-mode ports.
    Host,
    /// Routing mesh: the proxy joins the services' overlay networks.
    Ingress,
}

/// Arguments of `stack lint`.
#[derive(Debug, Args)]
pub struct StackLintArgs {
    /// The stack file (`-` = stdin)
    pub file: PathBuf,
    /// How the proxy publishes: host (what interlockctl sets up) or ingress (still on the
    /// routing mesh)
    #[arg(long, value_enum, value_name = "MODE", default_value_t = ProxyMode::Host)]
    pub proxy_mode: ProxyMode,
}

/// Arguments of `stack fix`.
#[derive(Debug, Args)]
pub struct StackFixArgs {
    /// The stack file (`-` = stdin, diff only)
    pub file: PathBuf,
    /// Write the fixed file in place instead of only printing the diff
    #[arg(long)]
    pub write: bool,
}

/// Arguments of `pin-proxy`.
#[derive(Debug, Args)]
pub struct PinProxyArgs {
    /// Node label that marks the proxy's dedicated nodes, as KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: String,
    /// Proxy replicas [default: the number of Ready, Active nodes with the label]
    #[arg(long, value_name = "N")]
    pub replicas: Option<u64>,
    /// Placement constraint for the extension service (repeatable)
    #[arg(long = "extension-constraint", value_name = "EXPR")]
    pub extension_constraints: Vec<String>,
}

impl PinProxyArgs {
    /// The flags as the words of a command line.
    fn push_words(&self, push: &mut impl FnMut(&[&str])) {
        push(&["--label", &self.label]);
        if let Some(replicas) = self.replicas {
            push(&["--replicas", &replicas.to_string()]);
        }
        for constraint in &self.extension_constraints {
            push(&["--extension-constraint", constraint]);
        }
    }
}

/// Arguments of `host-mode`.
#[derive(Debug, Args)]
pub struct HostModeArgs {
    /// Published HTTP port of the proxy
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub http: i64,
    /// Published HTTPS port of the proxy
    #[arg(long, value_name = "PORT", allow_negative_numbers = true)]
    pub https: i64,
}

impl HostModeArgs {
    /// The flags as the words of a command line.
    fn push_words(&self, push: &mut impl FnMut(&[&str])) {
        push(&[
            "--http",
            &self.http.to_string(),
            "--https",
            &self.https.to_string(),
        ]);
    }
}

/// Arguments of `migrate`: those of `pin-proxy` and `host-mode`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub pin: PinProxyArgs,
    #[command(flatten)]
    pub ports: HostModeArgs,
}

/// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Return to this config of the lineage instead of the previous one
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
}

/// Arguments of `upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The version to move to: the image tag, e.g. the MKE version `3.7.12`
    #[arg(long = "to", value_name = "VERSION")]
    pub version: String,
    /// Move the images to this org as well (`mirantis`: MKE 3.3+ names them so)
    #[arg(long, value_name = "ORG")]
    pub repository: Option<String>,
}

/// Arguments of `prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many of the newest configs to keep besides the protected ones
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub keep: usize,
}

/// Arguments of `apply`.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// The desired config TOML (`-` = stdin)
    #[arg(required_unless_present = "plan", conflicts_with = "plan")]
    pub file: Option<PathBuf>,
    /// Apply exactly the plan `--plan-out FILE` saved; refused (`stale_plan`) when the swarm
    /// moved since
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

/// `--version`: the version, the git commit when built from a checkout, and the Engine API
/// versions supported.
fn long_version() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let commit = option_env!("INTERLOCKCTL_GIT_COMMIT")
            .map(|commit| format!(" (commit {commit})"))
            .unwrap_or_default();
        format!(
            "{}{commit}\nDocker Engine API {}",
            env!("CARGO_PKG_VERSION"),
            crate::swarm::supported_api_versions()
        )
    })
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (examples: 90s, 5m, 1h)"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    use super::Cli;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The global options offline mode uses, each with a value where it takes one.
    const OFFLINE_OPTIONS: &[&[&str]] = &[
        &["--out", "edited.toml"],
        &["--extension", "default"],
        &["-o", "json"],
        &["--dry-run"],
        &["--check"],
        &["--show-secrets"],
        &["-q"],
        &["-v"],
        &["-y"],
        &["--no-progress"],
        &["--color", "never"],
        &["--service", "core"],
    ];

    const COMMAND: &[&str] = &["pin-proxy", "--label", "role=dtr"];

    /// `interlockctl OPTIONS... COMMAND... OPTIONS...`, each option before the command when
    /// `before(index)` says so.
    fn command_line(options: &[&[&str]], before: impl Fn(usize) -> bool) -> Vec<String> {
        let mut head = vec!["interlockctl"];
        let mut tail = Vec::new();
        for (index, option) in options.iter().enumerate() {
            if before(index) {
                head.extend_from_slice(option);
            } else {
                tail.extend_from_slice(option);
            }
        }
        head.extend_from_slice(COMMAND);
        head.extend(tail);
        head.into_iter().map(str::to_owned).collect()
    }

    /// What a command line parses to: the whole `Cli`, or the error as the user reads it.
    fn outcome(args: &[String]) -> Result<String, String> {
        Cli::parse_args(args)
            .map(|cli| format!("{cli:?}"))
            .map_err(|error| format!("{:?}: {error}", error.kind()))
    }

    /// Every combination of up to three offline global options (with `--config-file`; the
    /// relations are between two) parses to the same result, or is refused with the same
    /// error, whether each option stands before or after the command: all before, all
    /// after, and alternating either way.
    #[test]
    fn offline_global_options_work_before_or_after_the_command_in_any_combination() {
        let config_file: &[&str] = &["--config-file", "config.toml"];
        let (mut accepted, mut refused) = (0, 0);
        let subsets = (0..1u32 << OFFLINE_OPTIONS.len()).filter(|subset| subset.count_ones() <= 3);
        for subset in subsets {
            let mut options = vec![config_file];
            options.extend(
                (0..OFFLINE_OPTIONS.len())
                    .filter(|bit| subset & (1 << bit) != 0)
                    .map(|bit| OFFLINE_OPTIONS[bit]),
            );
            let after = outcome(&command_line(&options, |_| false));
            for before in [
                &(|_| true) as &dyn Fn(usize) -> bool,
                &|index| index % 2 == 0,
                &|index| index % 2 == 1,
            ] {
                let args = command_line(&options, before);
                assert_eq!(outcome(&args), after, "{args:?}");
            }
            match after {
                Ok(_) => accepted += 1,
                Err(_) => refused += 1,
            }
        }
        // Refused: the subsets with --check and --dry-run, or with -q and -v (1 + 10 each).
        assert_eq!((accepted, refused), (277, 22));
    }

    /// `--out` alone names `man`'s directory; `-o json` is refused where stdout carries a
    /// script or a page instead of a report.
    #[test]
    fn relations_that_depend_on_the_command() {
        let parse = |args: &[&str]| {
            let args = [&["interlockctl"][..], args].concat();
            Cli::parse_args(args).map_err(|error| error.kind())
        };
        assert!(parse(&["--out", "man1", "man"]).is_ok());
        assert!(parse(&["man", "--out", "man1", "-o", "json"]).is_ok());
        assert!(parse(&["completions", "zsh"]).is_ok());
        for args in [
            &["-o", "json", "man"][..],
            &["completions", "bash", "-o", "json"],
        ] {
            assert_eq!(
                parse(args).err(),
                Some(ErrorKind::ArgumentConflict),
                "{args:?}"
            );
        }
        assert_eq!(
            parse(&["completions", "bash", "--out", "x"]).err(),
            Some(ErrorKind::MissingRequiredArgument)
        );
    }

    /// The relations between global options hold wherever each option stands.
    #[test]
    fn related_global_options_are_checked_across_the_command() {
        let cases: &[(&[&str], &[&str], &str)] = &[
            (
                &["--config-file", "c.toml"],
                &["--out", "o.toml"],
                "accepted",
            ),
            (
                &["--out", "o.toml"],
                &[],
                "'--out <PATH>' needs '--config-file <PATH>'",
            ),
            (
                &["--context", "lab"],
                &["-H", "unix:///s"],
                "the argument '--context' cannot be used with '--host'",
            ),
            (
                &["--check"],
                &["--dry-run"],
                "the argument '--check' cannot be used with '--dry-run'",
            ),
            (
                &["-q"],
                &["-v"],
                "the argument '--quiet' cannot be used with '--verbose'",
            ),
        ];
        for (first, second, expected) in cases {
            let orders = [
                command_line(&[first, second], |index| index == 0),
                command_line(&[first, second], |index| index == 1),
                command_line(&[first, second], |_| true),
                command_line(&[first, second], |_| false),
            ];
            for args in orders {
                match outcome(&args) {
                    Ok(_) => assert_eq!(*expected, "accepted", "{args:?}"),
                    Err(error) => assert!(error.contains(expected), "{args:?}: {error}"),
                }
            }
        }
    }
}
