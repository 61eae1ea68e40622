// `make web`: builds the web UI's vendored ES modules from the pinned packages in
// node_modules into gate_runner/components/control/static/vendor/, copies each bundled
// package's licence beside them, and writes vendor/MANIFEST.json. Also vendors axe-core
// (test-only) into tests/web/vendor/. The output is committed: CI and users never run npm.
//
// This is a Node script rather than Python because everything it reads is npm's (the
// resolved package.json files, esbuild's JS API and its metafile, which says exactly which
// packages ended up in each bundle), so it needs nothing beyond what `npm ci` installed.
import * as esbuild from "esbuild";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = dirname(fileURLToPath(import.meta.url));
const root = dirname(web);
const modules = join(web, "node_modules");
const vendor = join(root, "gate_runner", "components", "control", "static", "vendor");
const testVendor = join(root, "tests", "web", "vendor");

// Each shipped module. `external` names stay bare imports in the output, resolved by the
// page's import map, so preact exists once however many modules import it.
const bundles = [
  { file: "preact.js", entry: "preact" },
  { file: "preact-hooks.js", entry: "preact/hooks", external: ["preact"] },
  { file: "htm.js", entry: "htm" },
  { file: "htm-preact.js", entry: "htm/preact", external: ["preact", "htm"] },
  { file: "uplot.js", entry: "uplot" },
  { file: "codemirror.js", entry: "./codemirror.js" },
  { file: "uqr.js", entry: "uqr" },
];

// Files shipped as the package publishes them (already minified), with the package they
// come from.
const copies = [{ file: "uplot.css", from: "uplot/dist/uPlot.min.css", pkg: "uplot" }];

function sha256(path) {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

function packageInfo(name) {
  const dir = join(modules, ...name.split("/"));
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  if (typeof meta.license !== "string" || !meta.license) {
    throw new Error(`${name}: package.json has no SPDX "license" string; add it by hand here`);
  }
  const licence = ["LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license"]
    .map((f) => join(dir, f))
    .find((f) => existsSync(f));
  if (!licence) {
    throw new Error(`${name}@${meta.version} ships no LICENSE file: vendor another package`);
  }
  return { name, version: meta.version, license: meta.license, licence };
}

// "@codemirror/view" -> "codemirror-view-LICENSE"; tests/web/test_vendor.py uses the same rule.
function licenceName(name) {
  return `${name.replace(/^@/, "").replace("/", "-")}-LICENSE`;
}

// The npm packages whose files esbuild put into one output, from its metafile.
function packagesIn(metafile) {
  const names = new Set();
  for (const input of Object.keys(metafile.inputs)) {
    const parts = input.split(/[\\/]/);
    const at = parts.lastIndexOf("node_modules");
    if (at < 0) continue; // our own entry file
    const first = parts[at + 1];
    names.add(first.startsWith("@") ? `${first}/${parts[at + 2]}` : first);
  }
  return [...names].sort();
}

function writeManifest(dir, entries) {
  entries.sort((a, b) => a.file.localeCompare(b.file) || a.name.localeCompare(b.name));
  writeFileSync(join(dir, "MANIFEST.json"), `${JSON.stringify(entries, null, 2)}\n`);
}

function vendorFile(dir, file, pkgs, entries) {
  const digest = sha256(join(dir, file));
  for (const pkg of pkgs) {
    mkdirSync(join(dir, "licenses"), { recursive: true });
    copyFileSync(pkg.licence, join(dir, "licenses", licenceName(pkg.name)));
    entries.push({
      name: pkg.name,
      version: pkg.version,
      license: pkg.license,
      file,
      sha256: digest,
    });
  }
}

async function main() {
  // Start clean, so that a module dropped from the list does not linger in the package.
  rmSync(vendor, { recursive: true, force: true });
  mkdirSync(vendor, { recursive: true });
  const entries = [];
  for (const b of bundles) {
    const result = await esbuild.build({
      absWorkingDir: web,
      entryPoints: [b.entry],
      outfile: join(vendor, b.file),
      bundle: true,
      format: "esm",
      platform: "browser",
      // What the UI supports: browsers with import maps (Chrome 89, Firefox 108, Safari 16.4).
      target: ["chrome89", "firefox108", "safari16.4"],
      minify: true,
      external: b.external ?? [],
      metafile: true,
      logLevel: "warning",
    });
    const pkgs = packagesIn(result.metafile).map(packageInfo);
    vendorFile(vendor, b.file, pkgs, entries);
  }
  for (const c of copies) {
    copyFileSync(join(modules, ...c.from.split("/")), join(vendor, c.file));
    vendorFile(vendor, c.file, [packageInfo(c.pkg)], entries);
  }
  writeManifest(vendor, entries);

  // axe-core runs only in tests/web (accessibility checks); it never ships.
  rmSync(testVendor, { recursive: true, force: true });
  mkdirSync(testVendor, { recursive: true });
  const testEntries = [];
  copyFileSync(join(modules, "axe-core", "axe.min.js"), join(testVendor, "axe.min.js"));
  vendorFile(testVendor, "axe.min.js", [packageInfo("axe-core")], testEntries);
  writeManifest(testVendor, testEntries);

  for (const [dir, list] of [
    [vendor, entries],
    [testVendor, testEntries],
  ]) {
    const files = [...new Set(list.map((e) => e.file))];
    console.log(`${relative(root, dir).split(sep).join("/")}: ${files.join(", ")}`);
  }
}

await main();
