"""The host-level templates: a sealchat node (standard agent keys) and the TLS certificate."""

from __future__ import annotations

from typing import Any

from sealchat_template.items import CERT, NODE, item, ref, template, trigger, uid

FS_CRIT = "{#FSNAME}: disk space is critically low (over {$VFS.FS.PUSED.MAX.CRIT}%)"
CERT_CRIT = "sealchat TLS certificate expires in under {$SEALCHAT.CERT.DAYS.CRIT} days"


def node_template() -> dict[str, Any]:
    t = NODE
    items = [
        item(
            t,
            "Zabbix agent ping",
            "agent.ping",
            value_type="UNSIGNED",
            component="system",
            triggers=[
                trigger(
                    t,
                    "Node down: Zabbix agent unreachable for {$AGENT.NODATA_TIMEOUT}",
                    f"nodata({ref(t, 'agent.ping')},{{$AGENT.NODATA_TIMEOUT}})=1",
                    "HIGH",
                    "The node or its agent stopped answering.",
                )
            ],
        ),
        item(
            t,
            "CPU utilization",
            "system.cpu.util",
            units="%",
            component="cpu",
            triggers=[
                trigger(
                    t,
                    "High CPU utilization (over {$CPU.UTIL.CRIT}% for 5m)",
                    f"min({ref(t, 'system.cpu.util')},5m)>{{$CPU.UTIL.CRIT}}",
                    "WARNING",
                    "The node is saturated; look at which service.",
                )
            ],
        ),
        item(t, "Load average (1m avg)", "system.cpu.load[all,avg1]", component="cpu"),
        item(
            t,
            "Available memory in %",
            "vm.memory.size[pavailable]",
            units="%",
            component="memory",
            triggers=[
                trigger(
                    t,
                    "Low memory (under {$MEMORY.AVAILABLE.MIN}% available for 5m)",
                    f"max({ref(t, 'vm.memory.size[pavailable]')},5m)<{{$MEMORY.AVAILABLE.MIN}}",
                    "AVERAGE",
                    "The node may start swapping or killing processes.",
                )
            ],
        ),
        item(
            t,
            "Total memory",
            "vm.memory.size[total]",
            value_type="UNSIGNED",
            units="B",
            component="memory",
            delay="1h",
        ),
        item(
            t,
            "System uptime",
            "system.uptime",
            value_type="UNSIGNED",
            units="uptime",
            component="system",
        ),
        item(
            t,
            "Number of sealchatd processes",
            "proc.num[,,,sealchatd]",
            value_type="UNSIGNED",
            component="process",
            triggers=[
                trigger(
                    t,
                    "Node down: no sealchatd process",
                    f"last({ref(t, 'proc.num[,,,sealchatd]')})<{{$SEALCHAT.PROCS.MIN}}",
                    "HIGH",
                    "systemctl status sealchat-*; journalctl -u sealchat-*.",
                )
            ],
        ),
    ]
    fs = "vfs.fs.size[{#FSNAME},pused]"
    net_in, net_out = "net.if.in[{#IFNAME}]", "net.if.out[{#IFNAME}]"
    bits = [
        {"type": "CHANGE_PER_SECOND", "parameters": [""]},
        {"type": "MULTIPLIER", "parameters": ["8"]},
    ]
    discovery = [
        {
            "uuid": uid(t, "vfs.fs.discovery"),
            "name": "Mounted filesystem discovery",
            "key": "vfs.fs.discovery",
            "delay": "1h",
            "filter": {
                "conditions": [
                    {"macro": "{#FSTYPE}", "value": "{$VFS.FS.FSTYPE.MATCHES}", "formulaid": "A"}
                ]
            },
            "item_prototypes": [
                item(
                    t,
                    "{#FSNAME}: space utilization",
                    fs,
                    units="%",
                    component="storage",
                    triggers=None,
                )
                | {
                    "trigger_prototypes": [
                        trigger(
                            t,
                            "{#FSNAME}: disk space is low (over {$VFS.FS.PUSED.MAX.WARN}%)",
                            f"last({ref(t, fs)})>{{$VFS.FS.PUSED.MAX.WARN}}",
                            "WARNING",
                            "Free space or grow the volume before it is critical.",
                            dependencies=[
                                {
                                    "name": FS_CRIT,
                                    "expression": f"last({ref(t, fs)})>{{$VFS.FS.PUSED.MAX.CRIT}}",
                                }
                            ],
                        ),
                        trigger(
                            t,
                            FS_CRIT,
                            f"last({ref(t, fs)})>{{$VFS.FS.PUSED.MAX.CRIT}}",
                            "HIGH",
                            "MongoDB, MariaDB and RabbitMQ stop writing on a full disk.",
                        ),
                    ]
                },
                item(
                    t,
                    "{#FSNAME}: free space",
                    "vfs.fs.size[{#FSNAME},free]",
                    value_type="UNSIGNED",
                    units="B",
                    component="storage",
                ),
            ],
        },
        {
            "uuid": uid(t, "net.if.discovery"),
            "name": "Network interface discovery",
            "key": "net.if.discovery",
            "delay": "1h",
            "item_prototypes": [
                item(
                    t,
                    "Interface {#IFNAME}: bits received",
                    net_in,
                    value_type="UNSIGNED",
                    units="bps",
                    component="network",
                    preprocessing=bits,
                ),
                item(
                    t,
                    "Interface {#IFNAME}: bits sent",
                    net_out,
                    value_type="UNSIGNED",
                    units="bps",
                    component="network",
                    preprocessing=bits,
                ),
            ],
        },
    ]
    for rule in discovery:
        for proto in rule["item_prototypes"]:
            proto["uuid"] = uid(t, "prototype", proto["key"])
    macros = [
        ("{$AGENT.NODATA_TIMEOUT}", "5m", "No agent data for this long means the node is down."),
        ("{$CPU.UTIL.CRIT}", "90", "CPU utilization threshold, %."),
        ("{$MEMORY.AVAILABLE.MIN}", "10", "Available memory threshold, %."),
        ("{$VFS.FS.PUSED.MAX.WARN}", "80", "Disk use warning threshold, %."),
        ("{$VFS.FS.PUSED.MAX.CRIT}", "90", "Disk use critical threshold, %."),
        ("{$VFS.FS.FSTYPE.MATCHES}", "^(ext4|xfs|btrfs)$", "Filesystems to watch."),
        ("{$SEALCHAT.PROCS.MIN}", "1", "sealchatd processes expected on this node."),
    ]
    return template(
        t,
        "A sealchat node: CPU, memory, disks, network, agent and sealchatd.",
        items,
        macros,
        discovery_rules=discovery,
    )


def cert_template() -> dict[str, Any]:
    t = CERT
    key = "sealchat.cert.days[{$SEALCHAT.CERT.PATH}]"
    items = [
        item(
            t,
            "sealchat TLS certificate: days until expiry",
            key,
            units="days",
            delay="1h",
            component="tls",
            triggers=[
                trigger(
                    t,
                    "sealchat TLS certificate expires in under {$SEALCHAT.CERT.DAYS.WARN} days",
                    f"last({ref(t, key)})<{{$SEALCHAT.CERT.DAYS.WARN}}",
                    "WARNING",
                    "Renew it (ansible: the tls role) before clients refuse the server.",
                    dependencies=[
                        {
                            "name": CERT_CRIT,
                            "expression": f"last({ref(t, key)})<{{$SEALCHAT.CERT.DAYS.CRIT}}",
                        }
                    ],
                ),
                trigger(
                    t,
                    CERT_CRIT,
                    f"last({ref(t, key)})<{{$SEALCHAT.CERT.DAYS.CRIT}}",
                    "HIGH",
                    "Renew it now: clients refuse an expired certificate.",
                ),
            ],
        ),
    ]
    macros = [
        ("{$SEALCHAT.CERT.PATH}", "/etc/pki/tls/certs/sealchat.crt", "The served certificate."),
        ("{$SEALCHAT.CERT.DAYS.WARN}", "21", "Days before expiry that warn."),
        ("{$SEALCHAT.CERT.DAYS.CRIT}", "7", "Days before expiry that are critical."),
    ]
    return template(t, "The load balancer's TLS certificate, read from its file.", items, macros)
