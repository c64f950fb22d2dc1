/**
 * Byte-exact framing of a server-sent-event stream: splits text at blank lines
 * (any mix of CRLF, LF and CR, as the SSE spec allows) and returns each frame with
 * its terminator, so a frame can be forwarded or dropped without changing a byte.
 * A general SSE parser (eventsource-parser) hands out parsed events, not the raw
 * text they came from, which is what dropping one frame needs.
 */
export class SseFramer {
  private buffer = "";

  /** Adds decoded text; returns the frames it completed, terminators included. */
  push(text: string): string[] {
    this.buffer += text;
    const frames: string[] = [];
    let start = 0;
    // A trailing CR may be the first half of a CRLF: wait for the next chunk.
    const limit = this.buffer.endsWith("\r") ? this.buffer.length - 1 : this.buffer.length;
    // A line ends in CRLF, LF or a lone CR; a blank line is two line ends in a row.
    const blank = /(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)/g;
    blank.lastIndex = 0;
    for (let m = blank.exec(this.buffer); m !== null && m.index + m[0].length <= limit; m = blank.exec(this.buffer)) {
      const end = m.index + m[0].length;
      frames.push(this.buffer.slice(start, end));
      start = end;
    }
    this.buffer = this.buffer.slice(start);
    return frames;
  }

  /** Whatever is left at the end of the stream (an unterminated last frame), or "". */
  flush(): string {
    const rest = this.buffer;
    this.buffer = "";
    return rest;
  }
}

/** The `data` of one frame: its `data:` lines joined by newlines, one leading space stripped; null if it has none. */
export function frameData(frame: string): string | null {
  let data: string | null = null;
  for (const line of frame.split(/\r\n|\r|\n/)) {
    if (!line.startsWith("data")) continue;
    if (line.length > 4 && line[4] !== ":") continue;
    const value = line.length > 5 && line[5] === " " ? line.slice(6) : line.slice(5);
    data = data === null ? value : `${data}\n${value}`;
  }
  return data;
}
