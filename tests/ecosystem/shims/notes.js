// A stdio-shim service in Node (tests/ecosystem/test_shims.py), no Flame
// SDK: frame mode, the same notes as examples/stdio-python/notes.py.
let buf = Buffer.alloc(0), prefix = Buffer.alloc(0), notes = [];
function send(kind, data) {
  const h = Buffer.alloc(5);
  h.write(kind, 0);
  h.writeUInt32BE(data.length, 1);
  process.stdout.write(Buffer.concat([h, data]));
}
process.stdin.on('data', chunk => {
  buf = Buffer.concat([buf, chunk]);
  while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
    const kind = String.fromCharCode(buf[0]), data = buf.subarray(5, 5 + buf.readUInt32BE(1));
    buf = buf.subarray(5 + data.length);
    if (kind === 'E') {
      prefix = Buffer.from(data); notes = []; send('O', Buffer.alloc(0));
    } else if (kind === 'T' && data.toString() === 'fail') {
      send('X', Buffer.from('asked to fail'));
    } else if (kind === 'T' && data.toString() === 'crash') {
      process.stderr.write('notes.js: asked to crash\n', () => process.exit(3));
      return;
    } else if (kind === 'T') {
      notes.push(Buffer.from(data));
      send('O', Buffer.concat([prefix, Buffer.from(': '), Buffer.from(notes.join(' | '))]));
    } else if (kind === 'L') {
      process.exit(0);
    }
  }
});
