// @ts-check
/**
 * What the bench and chaos runs read about the runtime's processes from Linux's
 * /proc: which workerd processes there are, their CPU time and resident memory,
 * and which one holds a listening port.
 */
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

/**
 * The fields of /proc/PID/stat after the command name: [0] state, [1] parent pid, [2] process group, [11] utime, [12] stime.
 * @param {number | string} pid
 */
function statFields(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return { isWorkerd: stat.includes("(workerd)"), fields: stat.slice(stat.lastIndexOf(")") + 2).split(" ") };
}

/**
 * Process ids of the running workerd processes that `keep` accepts (given the pid and its stat fields).
 * @param {(pid: number, fields: string[]) => boolean} keep
 */
export function workerdProcesses(keep) {
  /** @type {number[]} */
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const { isWorkerd, fields } = statFields(entry);
      if (isWorkerd && keep(Number(entry), fields)) pids.push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  return pids;
}

/**
 * CPU seconds (user + system) a process has used so far.
 * @param {number} pid
 */
export function cpuSeconds(pid) {
  const { fields } = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ = 100)
}

/**
 * Resident memory of each process, MiB, by pid (processes that ended are left out).
 * @param {number[]} pids
 */
export function rssMiB(pids) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const pid of pids) {
    try {
      out[pid] = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
    } catch {
      // ended
    }
  }
  return out;
}

/**
 * The process among `pids` holding the listening IPv4 socket on `port`, or null.
 * @param {number[]} pids
 * @param {number} port
 */
export function listenerOf(pids, port) {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const columns = readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .find((c) => c[1]?.endsWith(`:${hexPort}`) && c[3] === "0A"); // 0A: LISTEN
  const socket = columns?.[9] ? `socket:[${columns[9]}]` : null;
  if (!socket) return null;
  for (const pid of pids) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === socket) return pid;
        } catch {
          // closed while we looked
        }
      }
    } catch {
      // ended
    }
  }
  return null;
}
