// helper_ort.js: runs an ONNX model with ONNX Runtime (the npm package
// onnxruntime-node, CPU) on a batch read from a raw little-endian float32 file,
// and writes each output as OUT.<name>.f32 with its shape on stdout. The
// runtime is found through NODE_PATH (scripts/install-deps.sh --test installs
// it into a cache folder). Test code: prints errors and exits 1.
//   node helper_ort.js MODEL.onnx INPUT.f32 N C H W OUT
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, n, c, h, w, out] = process.argv.slice(2);
  if (!out) throw new Error('usage: node helper_ort.js MODEL.onnx INPUT.f32 N C H W OUT');
  const bytes = fs.readFileSync(input);
  const dims = [n, c, h, w].map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== 4 * count) throw new Error(`${input} holds ${bytes.length} bytes, not ${4 * count}`);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const result = await session.run({ input: new ort.Tensor('float32', data, dims) });
  for (const name of session.outputNames) {
    const t = result[name];
    fs.writeFileSync(`${out}.${name}.f32`, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    console.log(`${name} ${t.dims.join('x')}`);
  }
}

main().catch((e) => {
  console.error(`helper_ort: ${e.message}`);
  process.exit(1);
});
