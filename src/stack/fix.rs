//! `stack fix`: rewrites a stack file into the form that works with a host-mode proxy, the
//! seed's final stack: routed services publish `com.docker.lb.port` in host mode, join the
//! external `bridge` network instead of a network only the proxy would use, carry no
//! `com.docker.lb.network`, and the file is version 3.5 or later when it names a network.
//!
//! It repairs exactly the errors [`lint::problems`] marks repairable and touches nothing
//! else: existing published ports stay (a port without a fixed published port is switched
//! to host mode, otherwise a host-mode port is added), networks other services share stay.
//! Text that other services reach through an anchor is edited only where the edit is right
//! for all of them (removing `com.docker.lb.network`); anything else there is left for the
//! user, named. The result is parsed and linted again: a fix either passes `stack lint` or
//! is not offered. Pure: no I/O.

use std::collections::{BTreeMap, HashSet};

use crate::interlock::config::PublishMode;
use crate::interlock::findings::{Finding, Severity};
use crate::interlock::labels::{LabelSource, NetworkName};
use crate::stack::compose::{Port, Service, Stack};
use crate::stack::edit::{Edits, New};
use crate::stack::lint::{self, Repair};
use crate::stack::yaml::NodeId;

/// The external network every node has; host-mode services that need no other network
/// join it so the stack creates none for them.
const BRIDGE: &str = "bridge";

/// The fixed text and what changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fixed {
    /// The new file content (equal to the input when nothing needed fixing).
    pub text: String,
    /// One line per change, in file order.
    pub changes: Vec<String>,
}

/// Fixes a stack file for a host-mode proxy; `Err` holds the errors it cannot repair
/// (nothing is fixed then).
pub fn fix(stack: &Stack) -> Result<Fixed, Vec<Finding>> {
    let problems = lint::problems(stack, PublishMode::Host);
    let blockers: Vec<Finding> = problems
        .iter()
        .filter(|p| p.finding.severity == Severity::Error && p.repair.is_none())
        .map(|p| p.finding.clone())
        .collect();
    if !blockers.is_empty() {
        return Err(blockers);
    }
    let repairs: Vec<Repair> = problems.into_iter().filter_map(|p| p.repair).collect();
    let mut fixer = Fixer::new(stack, repairs.clone());
    for repair in &repairs {
        fixer.repair(repair)?;
    }
    let (text, changes) = fixer.finish()?;
    let fixed = Stack::parse("the fixed file", &text).map_err(|error| {
        vec![cannot_fix(
            None,
            None,
            format!("the fix would not parse: {error}"),
        )]
    })?;
    let remaining: Vec<Finding> = lint::lint(&fixed, PublishMode::Host)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| Finding {
            message: format!("after the fix, still: {}", f.message),
            ..f
        })
        .collect();
    if remaining.is_empty() {
        Ok(Fixed { text, changes })
    } else {
        Err(remaining)
    }
}

fn cannot_fix(line: Option<usize>, service: Option<&Service>, message: String) -> Finding {
    Finding {
        severity: Severity::Error,
        code: "cannot_fix",
        file: None,
        line,
        service: service.map(|s| s.name.clone()),
        source: None,
        label: None,
        value: None,
        message,
        hint: "make this change by hand, then run `interlockctl stack lint` again".into(),
    }
}

struct Fixer<'a> {
    stack: &'a Stack,
    edits: Edits<'a>,
    changes: Vec<(usize, String)>,
    /// Per service: the network keys to leave.
    leaving: BTreeMap<usize, Vec<String>>,
    /// Services that name no network and join the bridge.
    joining: Vec<usize>,
    removed_labels: HashSet<(NodeId, usize)>,
    /// Nodes a host-mode port was already added to (text shared by several services).
    published: HashSet<NodeId>,
    raise_version: bool,
    /// Every repair of this fix, to tell whether an edit of shared text suits all sharers.
    repairs: Vec<Repair>,
    /// The nodes each service reaches, for "is this text shared".
    reach: Vec<HashSet<NodeId>>,
}

impl<'a> Fixer<'a> {
    fn new(stack: &'a Stack, repairs: Vec<Repair>) -> Self {
        Fixer {
            published: HashSet::new(),
            repairs,
            stack,
            edits: Edits::new(&stack.doc),
            changes: Vec::new(),
            leaving: BTreeMap::new(),
            joining: Vec::new(),
            removed_labels: HashSet::new(),
            raise_version: false,
            reach: stack
                .services
                .iter()
                .map(|s| stack.doc.reachable(s.node).into_iter().collect())
                .collect(),
        }
    }

    fn service(&self, index: usize) -> &'a Service {
        &self.stack.services[index]
    }

    /// The services other than `index` that reach `node`.
    fn sharers(&self, index: usize, node: NodeId) -> impl Iterator<Item = usize> + '_ {
        self.reach
            .iter()
            .enumerate()
            .filter(move |(other, reached)| *other != index && reached.contains(&node))
            .map(|(other, _)| other)
    }

    fn change(&mut self, node: NodeId, text: String) {
        self.changes.push((self.stack.doc.line(node), text));
    }

    fn repair(&mut self, repair: &Repair) -> Result<(), Vec<Finding>> {
        match repair {
            Repair::RemoveLabel { service, key } => self.remove_label(*service, key),
            Repair::PublishHostPort { service, port } => self.publish(*service, *port)?,
            Repair::LeaveNetwork { service, key } => {
                self.leaving.entry(*service).or_default().push(key.clone());
            }
            Repair::JoinBridge { service } => self.joining.push(*service),
            Repair::RaiseVersion => self.raise_version = true,
        }
        Ok(())
    }

    /// Removes every service label `key`; a list shared through an anchor loses it for all.
    fn remove_label(&mut self, index: usize, key: &str) {
        let service = self.service(index);
        for label in &service.labels {
            if label.source != LabelSource::Service || label.key != key {
                continue;
            }
            let place = (label.place.container, label.place.index);
            if !self.removed_labels.insert(place) {
                continue;
            }
            self.edits.remove(place.0, place.1);
            self.changes.push((
                label.line,
                format!("{}: removed `{}={}`", service.name, label.key, label.value),
            ));
        }
    }

    /// Publishes `port` in host mode: switches a port without a fixed published port to
    /// host mode, else adds `- target: PORT` with `mode: host`.
    fn publish(&mut self, index: usize, port: u16) -> Result<(), Vec<Finding>> {
        let service = self.service(index);
        let action = format!(
            "publish port {port} of service {} in host mode",
            service.name
        );
        let host_port = New::Map(vec![
            ("target".into(), New::Scalar(port.to_string())),
            ("mode".into(), New::Scalar("host".into())),
        ]);
        let Some(ports) = &service.ports else {
            self.own(index, service.node, &action, None)?;
            self.edits
                .insert(service.node, "ports", New::List(vec![host_port]));
            self.change(
                service.key,
                format!(
                    "{}: added `ports:` with port {port} in host mode",
                    service.name
                ),
            );
            return Ok(());
        };
        let list = ports.entry.value;
        let unfixed = ports
            .items
            .iter()
            .enumerate()
            .find(|(_, p)| p.target == Some(port) && p.published.is_none());
        let target = unfixed.map_or(list, |(_, item)| item.node);
        self.own(index, target, &action, Some(port))?;
        if !self.published.insert(target) {
            return Ok(());
        }
        match unfixed {
            Some((position, item)) => self.switch_to_host(index, list, position, item, port),
            None => {
                self.edits.push(list, host_port);
                self.change(
                    ports.entry.key,
                    format!("{}: added port {port} in host mode", service.name),
                );
            }
        }
        Ok(())
    }

    fn switch_to_host(
        &mut self,
        index: usize,
        list: NodeId,
        position: usize,
        item: &Port,
        port: u16,
    ) {
        let service = self.service(index);
        match (item.long, item.mode_node) {
            (true, Some(mode)) => self.edits.set_scalar(mode, "host"),
            (true, None) => self
                .edits
                .insert(item.node, "mode", New::Scalar("host".into())),
            (false, _) => {
                let mut pairs = vec![("target".to_owned(), New::Scalar(port.to_string()))];
                if let Some(protocol) = &item.protocol {
                    pairs.push(("protocol".into(), New::Scalar(protocol.clone())));
                }
                pairs.push(("mode".into(), New::Scalar("host".into())));
                self.edits.replace(list, position, New::Map(pairs));
            }
        }
        self.change(
            item.node,
            format!("{}: port {port} published in host mode", service.name),
        );
    }

    /// Refuses to edit `node` for service `index` when another service reaches it too,
    /// unless each of them needs the same host-mode `port` (then the edit suits them all).
    fn own(
        &self,
        index: usize,
        node: NodeId,
        action: &str,
        port: Option<u16>,
    ) -> Result<(), Vec<Finding>> {
        let suits = |other: usize| {
            port.is_some_and(|port| {
                self.repairs.contains(&Repair::PublishHostPort {
                    service: other,
                    port,
                })
            })
        };
        if self.sharers(index, node).all(suits) {
            return Ok(());
        }
        Err(self.refuse(
            node,
            action,
            "that text is shared with other services through an anchor, and the change is not right for all of them",
        ))
    }

    fn refuse(&self, node: NodeId, action: &str, why: &str) -> Vec<Finding> {
        vec![cannot_fix(
            Some(self.stack.doc.line(node)),
            None,
            format!("cannot {action}: {why}"),
        )]
    }

    /// Leaves networks and joins the bridge, then declares the bridge and raises the
    /// version if needed; returns the text and the changes in file order.
    fn finish(mut self) -> Result<(String, Vec<String>), Vec<Finding>> {
        let mut needs_bridge = !self.joining.is_empty();
        let bridge = self.bridge_key();
        for (index, keys) in std::mem::take(&mut self.leaving) {
            needs_bridge |= self.leave(index, &keys, &bridge)?;
        }
        for index in std::mem::take(&mut self.joining) {
            let service = self.service(index);
            let action = format!(
                "attach service {} to the external network `{bridge}`",
                service.name
            );
            self.own(index, service.node, &action, None)?;
            self.edits.insert(
                service.node,
                "networks",
                New::List(vec![New::Scalar(bridge.clone())]),
            );
            self.change(
                service.key,
                format!(
                    "{}: joined the external network `{bridge}` instead of `<stack>_default`",
                    service.name
                ),
            );
        }
        if needs_bridge && self.stack.network(&bridge).is_none() {
            self.declare_bridge(&bridge)?;
        }
        if self.raise_version
            && let Some(version) = &self.stack.version
        {
            self.edits.set_scalar(version.node, "3.5");
            self.change(
                version.node,
                format!(
                    "`version: {}` raised to 3.5, the first that allows a network's `name:`",
                    version.text
                ),
            );
        }
        let text = self.edits.render().map_err(|why| {
            vec![cannot_fix(
                None,
                None,
                format!("the file's layout does not allow the fix: {why}"),
            )]
        })?;
        self.changes.sort_by_key(|(line, _)| *line);
        Ok((text, self.changes.into_iter().map(|(_, c)| c).collect()))
    }

    /// The key of the external bridge network: the one declared, else `bridge` (or a free
    /// variant when a different network took that key).
    fn bridge_key(&self) -> String {
        if let Some(existing) =
            self.stack.networks.iter().find(|n| {
                n.is_node_local() && n.deployed_name() == NetworkName::Exact(BRIDGE.into())
            })
        {
            return existing.key.clone();
        }
        std::iter::once(BRIDGE.to_owned())
            .chain((2..).map(|n| format!("{BRIDGE}-{n}")))
            .find(|key| self.stack.network(key).is_none())
            .expect("some key is free")
    }

    /// Takes a service off `keys`; returns whether it now needs the bridge instead.
    fn leave(&mut self, index: usize, keys: &[String], bridge: &str) -> Result<bool, Vec<Finding>> {
        let service = self.service(index);
        let networks = service
            .networks
            .as_ref()
            .expect("only named networks are left");
        let action = format!(
            "take service {} off network `{}`",
            service.name,
            keys.join("`, `")
        );
        if networks.entry.merged {
            return Err(self.refuse(
                networks.entry.key,
                &action,
                "its `networks:` come from a merged anchor",
            ));
        }
        self.own(index, networks.entry.value, &action, None)?;
        let leaving: Vec<_> = networks
            .refs
            .iter()
            .filter(|r| keys.contains(&r.key))
            .collect();
        let all = leaving.len() == networks.refs.len();
        let list_form = self.stack.doc.sequence(networks.entry.value).is_some();
        for (position, r) in leaving.iter().enumerate() {
            if all && position == 0 && list_form {
                self.edits.replace(
                    r.place.container,
                    r.place.index,
                    New::Scalar(bridge.to_owned()),
                );
            } else {
                self.edits.remove(r.place.container, r.place.index);
            }
            self.changes.push((
                r.line,
                format!(
                    "{}: left network `{}`, which only the proxy would use",
                    service.name, r.key
                ),
            ));
        }
        if all && !list_form {
            self.edits
                .insert(networks.entry.value, bridge, New::Map(Vec::new()));
        }
        if all {
            self.change(
                networks.entry.key,
                format!("{}: joined the external network `{bridge}`", service.name),
            );
        }
        Ok(all)
    }

    fn declare_bridge(&mut self, key: &str) -> Result<(), Vec<Finding>> {
        let declaration = New::Map(vec![
            ("external".into(), New::Scalar("true".into())),
            ("name".into(), New::Scalar(BRIDGE.into())),
        ]);
        match self.stack.networks_entry {
            Some(entry) if self.stack.doc.is_mapping(entry.value) => {
                self.edits.insert(entry.value, key, declaration);
                self.change(
                    entry.key,
                    format!("declared the external network `{key}` (name: {BRIDGE})"),
                );
            }
            Some(entry) => {
                let value = self.stack.doc.node(entry.value);
                if value.start != value.end {
                    return Err(self.refuse(
                        entry.key,
                        "declare the external bridge network",
                        "the top-level `networks:` is neither a mapping nor empty",
                    ));
                }
                self.edits
                    .fill(entry.key, vec![(key.to_owned(), declaration)]);
                self.change(
                    entry.key,
                    format!("declared the external network `{key}` (name: {BRIDGE})"),
                );
            }
            None => {
                self.edits
                    .insert_at_root("networks", New::Map(vec![(key.to_owned(), declaration)]));
                self.changes.push((
                    usize::MAX,
                    format!("declared the external network `{key}` (name: {BRIDGE})"),
                ));
            }
        }
        if self
            .stack
            .version
            .as_ref()
            .is_some_and(|v| matches!(v.number, Some((3, Some(minor))) if minor < 5))
        {
            self.raise_version = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(text: &str) -> Result<Fixed, Vec<Finding>> {
        fix(&Stack::parse("t.yml", text).unwrap())
    }

    fn routed(name: &str, port: u16, rest: &str) -> String {
        format!(
            "  {name}:\n    deploy:\n      labels: [com.docker.lb.hosts={name}.example.com, com.docker.lb.port={port}]\n{rest}"
        )
    }

    #[test]
    fn a_shared_port_list_gets_the_host_port_once() {
        let text = format!(
            "version: \"3.5\"\nservices:\n{}{}networks:\n  b:\n    external: true\n    name: bridge\n",
            routed(
                "v1",
                8080,
                "    ports: &ports\n      - \"8080:8080\"\n    networks: [b]\n"
            ),
            routed("v2", 8080, "    ports: *ports\n    networks: [b]\n"),
        );
        let out = fixed(&text).unwrap();
        assert_eq!(out.changes, ["v1: added port 8080 in host mode"]);
        assert!(out.text.contains(
            "    ports: &ports\n      - \"8080:8080\"\n      - target: 8080\n        mode: host\n    networks: [b]\n"
        ));
    }

    #[test]
    fn shared_text_that_needs_different_fixes_is_left_to_the_user() {
        let text = format!(
            "version: \"3.5\"\nservices:\n{}{}networks:\n  b:\n    external: true\n    name: bridge\n",
            routed(
                "v1",
                8080,
                "    ports: &ports\n      - \"80:80\"\n    networks: [b]\n"
            ),
            routed("v2", 9090, "    ports: *ports\n    networks: [b]\n"),
        );
        let refused = fixed(&text).unwrap_err();
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].code, "cannot_fix");
        assert_eq!(refused[0].line, Some(6));
        assert_eq!(
            refused[0].message,
            "cannot publish port 8080 of service v1 in host mode: that text is shared with other services through an anchor, and the change is not right for all of them"
        );
    }

    #[test]
    fn map_form_networks_make_way_for_the_bridge_and_an_empty_networks_key_is_filled() {
        let text = format!(
            "version: \"3.5\"\nservices:\n{}networks:\n  front:\n",
            routed(
                "web",
                80,
                "    ports: [{target: 80, mode: host}]\n    networks:\n      front:\n        aliases: [www]\n"
            ),
        );
        let out = fixed(&text).unwrap();
        assert!(
            out.text.contains("    networks:\n      bridge: {}\nnetworks:\n  front:\n  bridge:\n    external: true\n    name: bridge\n"),
            "{}",
            out.text
        );
        let empty = format!(
            "services:\n{}networks:\n",
            routed("web", 80, "    ports: [{target: 80, mode: host}]\n")
        );
        let out = fixed(&empty).unwrap();
        assert!(
            out.text.ends_with("    networks:\n      - bridge\nnetworks:\n  bridge:\n    external: true\n    name: bridge\n"),
            "{}",
            out.text
        );
    }

    #[test]
    fn errors_the_fix_cannot_repair_stop_it() {
        let text = format!(
            "version: \"3.5\"\nservices:\n{}",
            routed(
                "web",
                80,
                "    ports: [{target: 80, mode: host}]\n    networks: [nowhere]\n"
            )
        );
        let refused = fixed(&text).unwrap_err();
        assert_eq!(
            refused.iter().map(|f| f.code).collect::<Vec<_>>(),
            ["undefined_network"]
        );
    }
}
