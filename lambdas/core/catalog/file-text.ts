export type DecodedText =
  | { readonly ok: true; readonly text: string }
  | { readonly ok: false; readonly offset: number; readonly byte: number; readonly line: number; readonly column: number };

/**
 * Decodes a migration file as strict UTF-8. A file that is not valid UTF-8 is refused (with the byte offset of the
 * first bad byte) instead of being decoded with replacement characters, which would silently change its SQL. A
 * leading UTF-8 byte order mark is dropped from the text (never sent as an invisible character); the file's
 * checksum is still taken over its bytes, so it stays stable while the file does.
 */
export function decodeUtf8(bytes: Uint8Array): DecodedText {
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes) };
  } catch {
    const offset = firstInvalidByte(bytes);
    const before = new TextDecoder('utf-8', { ignoreBOM: false }).decode(bytes.subarray(0, offset));
    const lines = before.split('\n');
    return { ok: false, offset, byte: bytes[offset]!, line: lines.length, column: [...lines[lines.length - 1]!].length + 1 };
  }
}

/** The offset of the first byte that does not start a valid UTF-8 sequence; `bytes` is known to be invalid. */
function firstInvalidByte(bytes: Uint8Array): number {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i]!;
    const length = lead < 0x80 ? 1 : lead >> 5 === 0b110 ? 2 : lead >> 4 === 0b1110 ? 3 : lead >> 3 === 0b11110 ? 4 : 0;
    if (length === 0 || i + length > bytes.length) return i;
    try {
      // The strict decoder also refuses overlong forms, surrogates and bad continuation bytes.
      strict.decode(bytes.subarray(i, i + length));
    } catch {
      return i;
    }
    i += length;
  }
  return i;
}
