// ESLint (flat config) for the browser modules, run from the repository's root:
// `frontend/node_modules/.bin/eslint --config frontend/eslint.config.mjs --max-warnings 0
// roadwatch/web/static/live roadwatch/web/static/m` (npm run lint; tests/test_frontend_types.py).
// The command centre's (live/) and the phone app's (m/) are ES modules; the phone app's
// service worker (m/sw.js) is a classic worker script. Undefined names are TypeScript's job
// (tsconfig.json, tsconfig.sw.json, checkJs), so no-undef is off and no globals list is needed.
import js from "@eslint/js";

const rules = {
  ...js.configs.recommended.rules,
  "no-undef": "off",
  "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
  "no-var": "error",
  "prefer-const": "error",
  eqeqeq: ["error", "always", { null: "ignore" }],
  "no-implicit-globals": "error",
  "no-shadow": "error",
  "no-use-before-define": ["error", { functions: false, classes: true, variables: false }],
};

export default [
  {
    files: [
      "roadwatch/web/static/live/**/*.js",
      "roadwatch/web/static/m/**/*.js",
      "roadwatch/web/static/cases/**/*.js", // the case pages (issue 19)
    ],
    ignores: ["roadwatch/web/static/m/sw.js"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    rules,
  },
  {
    // A classic script: its top-level names are the worker's own global scope.
    files: ["roadwatch/web/static/m/sw.js"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2022, sourceType: "script" },
    rules: { ...rules, "no-implicit-globals": "off", strict: ["error", "global"] },
  },
];
