// A FAKE on purpose: makes `import('s3db.js')` fail as in a project that lacks it (or one of its
// dependencies), a fault no installed part gives on demand. Loaded with NODE_OPTIONS=--import.
import { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === 's3db.js') throw Object.assign(new Error("Cannot find package 's3db.js' imported from the command line"), { code: 'ERR_MODULE_NOT_FOUND' });
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hook)}`);
