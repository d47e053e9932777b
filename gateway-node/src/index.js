'use strict';
module.exports = {
  ...require('./gateway'),
  ...require('./config'),
  ...require('./contract'),
  ...require('./storage'),
  ...require('./streams'),
  ...require('./keys'),
};
