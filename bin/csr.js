#!/usr/bin/env node
// The `csr` command: TypeScript sources run through tsx's CommonJS loader, so there is no build step to forget.
'use strict';
require('tsx/cjs');
process.env.CSR_CLI_MAIN = '1';
require('../app/cli/main.ts');
