// ESLint (flat config) for the command centre's ES modules, run from the repository's
// root: `frontend/node_modules/.bin/eslint --config frontend/eslint.config.mjs
// --max-warnings 0 roadwatch/web/static/live` (npm run lint; tests/test_frontend_types.py).
// Undefined names are TypeScript's job (tsconfig.json, checkJs), so no-undef is off and
// no browser-globals list is needed.
import js from "@eslint/js";

export default [
  {
    files: ["roadwatch/web/static/live/**/*.js"],
    ...js.configs.recommended,
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
    rules: {
      ...js.configs.recommended.rules,
      "no-undef": "off",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      "no-var": "error",
      "prefer-const": "error",
      eqeqeq: ["error", "always", { null: "ignore" }],
      "no-implicit-globals": "error",
      "no-shadow": "error",
      "no-use-before-define": ["error", { functions: false, classes: true, variables: false }],
    },
  },
];
