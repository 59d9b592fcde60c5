/**
 * Temporal over mTLS from the Temporal CLI's variables: a real dev server behind a real TLS terminator
 * that demands a client certificate (as a production frontend does); the CLI's client and a worker's
 * native connection get through with TEMPORAL_TLS_CERT/KEY/CA, and nothing gets through without them.
 */
import anyTest, { type TestFn } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { NativeConnection } from '@temporalio/worker';
import { connectClient } from '../src/client/temporal';
import { TemporalAuthError, describeTemporalSecurity, temporalConnectionOptions } from '../src/client/temporal-auth';
import { csrEnv } from '../src/env';
import { createTestEnv, tempDir } from './helpers/temporal-harness';

interface Context {
  env: TestWorkflowEnvironment;
  proxy: tls.Server;
  address: string;
  certs: string;
}
const test = anyTest as TestFn<Context>;

/** A CA, a server certificate for localhost and a client certificate, made with openssl. */
function makeCertificates(dir: string): void {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=csr-test-ca');
  for (const name of ['server', 'client']) {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name === 'server' ? 'localhost' : 'csr-client'}`);
    fs.writeFileSync(path.join(dir, `${name}.ext`), name === 'server' ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' : 'extendedKeyUsage=clientAuth\n');
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`);
  }
}

test.before(async (t) => {
  const env = await createTestEnv('ERROR');
  const certs = tempDir('csr-tls-');
  makeCertificates(certs);
  const [host, port] = env.address.split(':');
  const read = (name: string) => fs.readFileSync(path.join(certs, name));
  // TLS terminated in front of the plain dev server; a client without a certificate of our CA is cut off.
  const proxy = tls.createServer(
    { key: read('server.key'), cert: read('server.pem'), ca: read('ca.pem'), requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] },
    (socket) => {
      const upstream = net.connect(Number(port), host);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    },
  );
  proxy.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  t.context = { env, proxy, address: `localhost:${(proxy.address() as net.AddressInfo).port}`, certs };
});

test.after.always(async (t) => {
  t.context.proxy?.close();
  await t.context.env?.teardown();
});

const mtls = (certs: string): NodeJS.ProcessEnv => ({
  TEMPORAL_TLS_CERT: path.join(certs, 'client.pem'),
  TEMPORAL_TLS_KEY: path.join(certs, 'client.key'),
  TEMPORAL_TLS_CA: path.join(certs, 'ca.pem'),
});

test.serial('the CLI client and a worker connection get through with TEMPORAL_TLS_CERT/KEY/CA', async (t) => {
  const env = { ...csrEnv(), temporalAddress: t.context.address, externalTemporal: true };
  const client = await connectClient(env, mtls(t.context.certs));
  const described = await client.workflowService.getSystemInfo({});
  t.truthy(described.serverVersion);
  await client.connection.close();
  const native = await NativeConnection.connect(temporalConnectionOptions(t.context.address, mtls(t.context.certs)));
  await native.close();
  t.is(describeTemporalSecurity(temporalConnectionOptions(t.context.address, mtls(t.context.certs))), 'mTLS');
});

test.serial('without a client certificate, or without TLS, nothing gets through', async (t) => {
  const env = { ...csrEnv(), temporalAddress: t.context.address, externalTemporal: true };
  await t.throwsAsync(connectClient(env, { TEMPORAL_TLS_CA: path.join(t.context.certs, 'ca.pem') }));
  await t.throwsAsync(connectClient(env, {}));
});

test('settings that cannot work are refused with the variable named; an API key turns TLS on', (t) => {
  t.throws(() => temporalConnectionOptions('h:1', { TEMPORAL_TLS_CERT_DATA: '-----BEGIN CERTIFICATE-----' }), {
    instanceOf: TemporalAuthError,
    message: /^TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY: set both/,
  });
  t.throws(() => temporalConnectionOptions('h:1', { TEMPORAL_TLS_CA: '/nowhere/ca.pem' }), { message: /^TEMPORAL_TLS_CA: cannot read \/nowhere\/ca\.pem \(ENOENT\)/ });
  t.throws(() => temporalConnectionOptions('h:1', { TEMPORAL_TLS: 'maybe' }), { message: /^TEMPORAL_TLS: expected true or false/ });
  t.deepEqual(temporalConnectionOptions('h:1', { TEMPORAL_API_KEY: 'k' }), { address: 'h:1', tls: {}, apiKey: 'k' });
  t.deepEqual(temporalConnectionOptions('h:1', { TEMPORAL_API_KEY: 'k', TEMPORAL_TLS: 'false' }), { address: 'h:1', apiKey: 'k' });
  t.deepEqual(temporalConnectionOptions('h:1', {}), { address: 'h:1' });
  t.is(describeTemporalSecurity(temporalConnectionOptions('h:1', { TEMPORAL_API_KEY: 'secret-key' })), 'TLS + API key');
});
