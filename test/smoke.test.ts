import test from 'ava';

test('typescript runs under ava with tsx', (t) => {
  const value: number = 1 + 1;
  t.is(value, 2);
});
